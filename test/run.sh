#!/bin/sh
# npm test: every suite (unit, integration, e2e) in one vitest run.
# As root: installs the Debian packages the suites need when missing, and runs the
# whole run inside a network namespace it creates (WebRTC must stay on this machine).
set -eu
cd "$(dirname "$0")/.."

PACKAGES="chromium redis-server nginx-light libnginx-mod-http-js aria2 openssl iptables coturn libnetfilter-queue-dev gcc libc6-dev"
if [ "$(id -u)" = 0 ]; then
  missing=""
  for pkg in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing="$missing $pkg"
  done
  if [ -n "$missing" ]; then
    echo "test/run.sh: installing Debian packages:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $missing >/dev/null
  fi
fi

mkdir -p .test-tmp
RESULTS=.test-tmp/vitest-results.json
rm -f "$RESULTS"
NETNS=""
cleanup() { [ -n "$NETNS" ] && ip netns delete "$NETNS" 2>/dev/null || true; }
trap cleanup EXIT INT TERM

RUN=""
if [ "$(id -u)" = 0 ] && command -v ip >/dev/null 2>&1; then
  NETNS="pf-test-$$"
  ip netns add "$NETNS"
  ip netns exec "$NETNS" ip link set lo up
  ip netns exec "$NETNS" ip link add v0 type veth peer name v1
  ip netns exec "$NETNS" ip addr add 10.77.0.1/24 dev v0
  ip netns exec "$NETNS" ip addr add 10.77.0.2/24 dev v1
  ip netns exec "$NETNS" ip link set v0 up
  ip netns exec "$NETNS" ip link set v1 up
  RUN="ip netns exec $NETNS"
  export PEERFILL_TEST_NETNS="$NETNS"
fi

echo "test/run.sh: typecheck and lint"
npx tsc -p tsconfig.json
npx eslint --max-warnings 0 .

status=0
$RUN npx vitest run --reporter=default --reporter=json --outputFile.json="$RESULTS" "$@" || status=$?
node test/support/summary.mjs "$RESULTS" "${NETNS:-none}" || true
exit $status
