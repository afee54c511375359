/*
 * A userspace delay line for the lab, for kernels without the netem qdisc: iptables sends a
 * direction's packets to an NFQUEUE, and this holds each packet's verdict until its time has
 * come (delay plus jitter), or drops it (loss). Packets keep their order (a later packet is
 * never released before an earlier one), so jitter here adds delay variation, not reordering.
 * Only metadata crosses to userspace (NFQNL_COPY_META): the packet stays in the kernel.
 *
 *   delay-line QUEUE DELAY_MS JITTER_MS LOSS SEED
 *
 * Prints "ready" once bound. Runs until killed. Built by test/lab/delay-line.ts.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

/* From linux/netfilter.h, whose linux/in.h clashes with netinet/in.h. */
#ifndef NF_ACCEPT
#define NF_DROP 0
#define NF_ACCEPT 1
#endif

#define RING 262144 /* packets held at once: > 1 Gbit/s x 1 s of 1500-byte packets */

static uint32_t ids[RING];
static uint64_t due_ns[RING];
static unsigned head = 0, tail = 0; /* ring: [head, tail) */
static uint64_t last_due_ns = 0;
static double delay_ns, jitter_ns, loss;
static uint64_t rng_state;

static uint64_t now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* xorshift64*: reproducible from the seed, so a lab run can be repeated. */
static double uniform(void) {
  rng_state ^= rng_state >> 12;
  rng_state ^= rng_state << 25;
  rng_state ^= rng_state >> 27;
  return (double)((rng_state * 2685821657736338717ull) >> 11) / 9007199254740992.0;
}

static int on_packet(struct nfq_q_handle *queue, struct nfgenmsg *message, struct nfq_data *data, void *unused) {
  (void)message;
  (void)unused;
  struct nfqnl_msg_packet_hdr *header = nfq_get_msg_packet_hdr(data);
  if (header == NULL) return 0;
  uint32_t id = ntohl(header->packet_id);
  if (loss > 0 && uniform() < loss) {
    return nfq_set_verdict(queue, id, NF_DROP, 0, NULL);
  }
  if (tail - head >= RING) {
    return nfq_set_verdict(queue, id, NF_ACCEPT, 0, NULL);
  }
  /* Uniform in [delay - jitter, delay + jitter], never before the packet ahead of it. */
  double wanted = delay_ns + (jitter_ns > 0 ? (uniform() * 2 - 1) * jitter_ns : 0);
  uint64_t due = now_ns() + (uint64_t)(wanted > 0 ? wanted : 0);
  if (due < last_due_ns) due = last_due_ns;
  last_due_ns = due;
  ids[tail % RING] = id;
  due_ns[tail % RING] = due;
  tail++;
  return 0;
}

/* Accept every held packet whose time has come; consecutive ones in one batch verdict. */
static void release(struct nfq_q_handle *queue) {
  uint64_t now = now_ns();
  uint32_t last = 0;
  int any = 0;
  while (head != tail && due_ns[head % RING] <= now) {
    last = ids[head % RING];
    any = 1;
    head++;
  }
  if (any) nfq_set_verdict_batch(queue, last, NF_ACCEPT);
}

int main(int argc, char **argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: delay-line QUEUE DELAY_MS JITTER_MS LOSS SEED\n");
    return 2;
  }
  int queue_num = atoi(argv[1]);
  delay_ns = atof(argv[2]) * 1e6;
  jitter_ns = atof(argv[3]) * 1e6;
  loss = atof(argv[4]);
  rng_state = strtoull(argv[5], NULL, 10) | 1;

  struct nfq_handle *handle = nfq_open();
  if (handle == NULL) {
    perror("delay-line: nfq_open");
    return 1;
  }
  struct nfq_q_handle *queue = nfq_create_queue(handle, (uint16_t)queue_num, on_packet, NULL);
  if (queue == NULL) {
    perror("delay-line: nfq_create_queue");
    return 1;
  }
  if (nfq_set_mode(queue, NFQNL_COPY_META, 0) < 0 || nfq_set_queue_maxlen(queue, RING) < 0) {
    perror("delay-line: queue settings");
    return 1;
  }
  int fd = nfq_fd(handle);
  int size = 64 * 1024 * 1024;
  setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size); /* root: past rmem_max */
  printf("ready\n");
  fflush(stdout);

  char buffer[65536] __attribute__((aligned));
  for (;;) {
    int timeout_ms = -1;
    if (head != tail) {
      uint64_t now = now_ns();
      uint64_t due = due_ns[head % RING];
      timeout_ms = due <= now ? 0 : (int)((due - now + 999999) / 1000000);
    }
    struct pollfd pfd = { .fd = fd, .events = POLLIN };
    int ready = poll(&pfd, 1, timeout_ms);
    if (ready > 0) {
      for (;;) {
        ssize_t length = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
        if (length < 0) {
          if (errno == ENOBUFS) {
            fprintf(stderr, "delay-line: queue %d lost messages (ENOBUFS)\n", queue_num);
            continue;
          }
          break;
        }
        nfq_handle_packet(handle, buffer, (int)length);
      }
    }
    release(queue);
  }
}
