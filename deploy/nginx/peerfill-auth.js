/*
 * peerfill edge: signed-URL check in njs (nginx JavaScript, njs >= 0.7).
 *
 * The same check as protocol/signed-url.ts, keep the two in step:
 *   sig = base64url(HMAC-SHA256(secret[kid], "GET\n" + path + "\n" + exp + "\n" + kid))
 * where path is the request path exactly as sent (still percent-encoded, no query) and
 * HEAD is checked as GET. Keys are `kid:secret,kid:secret` (each secret used as its UTF-8
 * bytes, at least 16 characters), read on every request from the file named by
 * $peerfill_keys_file when it is set (so rotation needs no reload), else from the
 * environment variable PEERFILL_SIGNING_KEYS (nginx passes it only with `env
 * PEERFILL_SIGNING_KEYS;` in the main context).
 *
 * verify(r) is used with js_set: it returns "ok" or the PF_ERR_... code the origin would
 * send, and the config answers 403 for anything but "ok" before the cache or the
 * upstream is touched.
 */
var crypto = require('crypto');
var fs = require('fs');

var KID_RE = /^[A-Za-z0-9_-]{1,32}$/;
var EXP_RE = /^[0-9]{1,12}$/;
var SIG_RE = /^[A-Za-z0-9_-]{43}$/;
/* As at the origin: only the canonical spelling of a number verifies (`0123` is not `123`). */
var CANONICAL_EXP_RE = /^(0|[1-9][0-9]{0,11})$/;
var MIN_SECRET_CHARS = 16;

function readKeySpec(r) {
    var file = r.variables.peerfill_keys_file;
    if (file) {
        try {
            return fs.readFileSync(file, 'utf8');
        } catch (e) {
            r.error('peerfill: cannot read keys file: ' + e.message);
            return '';
        }
    }
    return process.env.PEERFILL_SIGNING_KEYS || '';
}

/* kid -> secret; malformed entries are skipped (and logged) rather than trusted. */
function parseKeys(r, spec) {
    var keys = {};
    var parts = spec.split(',');
    for (var i = 0; i < parts.length; i++) {
        var part = parts[i].trim();
        if (part === '') continue;
        var colon = part.indexOf(':');
        var kid = colon < 0 ? '' : part.slice(0, colon);
        var secret = colon < 0 ? '' : part.slice(colon + 1);
        if (!KID_RE.test(kid) || secret.length < MIN_SECRET_CHARS || Object.prototype.hasOwnProperty.call(keys, kid)) {
            r.error('peerfill: ignoring malformed signing key entry ' + (i + 1));
            continue;
        }
        keys[kid] = secret;
    }
    return keys;
}

/* The three query parameters, percent-decoded; a repeated or undecodable one counts as missing. */
function parseQuery(args) {
    var out = {};
    var seen = {};
    if (!args) return out;
    var pairs = args.split('&');
    for (var i = 0; i < pairs.length; i++) {
        var eq = pairs[i].indexOf('=');
        var name = eq < 0 ? pairs[i] : pairs[i].slice(0, eq);
        if (name !== 'exp' && name !== 'kid' && name !== 'sig') continue;
        var value;
        try {
            value = decodeURIComponent((eq < 0 ? '' : pairs[i].slice(eq + 1)).replace(/\+/g, ' '));
        } catch (e) {
            value = undefined;
        }
        out[name] = seen[name] ? undefined : value;
        seen[name] = true;
    }
    return out;
}

/*
 * Compares every character whatever the first difference is: njs has no timingSafeEqual.
 * Over the base64url text, as the origin does, so different spare bits in the last
 * character do not verify either.
 */
function constantTimeEqual(a, b) {
    if (a.length !== b.length) return false;
    var diff = 0;
    for (var i = 0; i < a.length; i++) diff |= a.charCodeAt(i) ^ b.charCodeAt(i);
    return diff === 0;
}

function requestPath(r) {
    var uri = r.variables.request_uri || '';
    var q = uri.indexOf('?');
    return q < 0 ? uri : uri.slice(0, q);
}

function verify(r) {
    var q = parseQuery(r.variables.args);
    if (typeof q.exp !== 'string' || !EXP_RE.test(q.exp) || typeof q.kid !== 'string' || !KID_RE.test(q.kid) ||
        typeof q.sig !== 'string' || !SIG_RE.test(q.sig)) {
        return 'PF_ERR_SIGNATURE_MISSING';
    }
    var keys = parseKeys(r, readKeySpec(r));
    if (!Object.prototype.hasOwnProperty.call(keys, q.kid)) return 'PF_ERR_UNKNOWN_KEY';

    if (!CANONICAL_EXP_RE.test(q.exp)) return 'PF_ERR_SIGNATURE_INVALID';
    var method = r.method.toUpperCase();
    if (method === 'HEAD') method = 'GET';
    var exp = Number(q.exp);
    var data = method + '\n' + requestPath(r) + '\n' + exp + '\n' + q.kid;
    var expected = crypto.createHmac('sha256', keys[q.kid]).update(data).digest('base64url');
    if (!constantTimeEqual(expected, q.sig)) return 'PF_ERR_SIGNATURE_INVALID';
    // Expiry after the MAC, as at the origin: the order of checks tells an attacker nothing.
    return exp < Math.floor(Date.now() / 1000) ? 'PF_ERR_URL_EXPIRED' : 'ok';
}

export default { verify };
