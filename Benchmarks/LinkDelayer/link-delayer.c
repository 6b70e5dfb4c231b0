/*
 * link-delayer: a fixed one-way delay for packets, since this kernel has no netem.
 *
 * Usage (as root, inside the network namespace whose rules queue the packets):
 *
 *     link-delayer QUEUE:MILLISECONDS [QUEUE:MILLISECONDS ...]
 *
 * iptables rules send packets to NFQUEUE queue numbers (`-j NFQUEUE --queue-num N`).
 * For each queue given, this program binds it (metadata only: no payload is
 * copied to user space), notes when each packet arrived, and accepts it once
 * its delay has passed. A queue has one delay, so its packets leave in the
 * order they came: the expired ones are always a prefix of the queue and one
 * batch verdict (`nfq_set_verdict_batch`: every id up to N) releases them all.
 *
 * It prints `ready` on stdout once every queue is bound (add the iptables rules
 * only then: a rule whose queue has no listener drops its packets), and on
 * SIGTERM or SIGINT prints its counters on stderr and exits 0.
 *
 * Built by `shoal-bench links` on first use (`cc -O2 link-delayer.c
 * -lnetfilter_queue`, needs Debian's libnetfilter-queue-dev), never by the
 * Swift package, so `swift build` and `swift test` need no extra package.
 */
#define _GNU_SOURCE /* ppoll */
#include <arpa/inet.h>  /* before the kernel headers below, which would redefine its structs */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <libnetfilter_queue/libnetfilter_queue.h>
#include <linux/netfilter.h>
#include <linux/netlink.h>

#define MAX_QUEUES 16
#define RING 131072                 /* packets held per queue; above the kernel's queue length */
#define KERNEL_QUEUE_LENGTH 65536   /* the kernel's default (1024) drops packets at high rates */
#define SOCKET_BUFFER (32 << 20)

struct held { uint32_t id; int64_t due; };

struct queue {
    uint16_t number;
    int64_t delay_ns;
    struct nfq_q_handle *handle;
    struct held *ring;
    size_t head, count;
    /* Counters printed at exit. */
    uint64_t packets, batches, overflow, max_held;
};

static struct queue queues[MAX_QUEUES];
static int queue_count;
static volatile sig_atomic_t stopping;

static int64_t now_ns(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (int64_t)t.tv_sec * 1000000000 + t.tv_nsec;
}

static void on_signal(int sig) { (void)sig; stopping = 1; }

/* One queued packet: remember its id and when it may go. */
static int on_packet(struct nfq_q_handle *qh, struct nfgenmsg *msg, struct nfq_data *data, void *context) {
    (void)msg;
    struct queue *q = context;
    struct nfqnl_msg_packet_hdr *header = nfq_get_msg_packet_hdr(data);
    if (header == NULL) return 0;
    uint32_t id = ntohl(header->packet_id);
    q->packets++;
    if (q->count == RING) {
        /* Cannot happen while RING exceeds the kernel's queue length; never hold a packet forever. */
        q->overflow++;
        return nfq_set_verdict(qh, id, NF_ACCEPT, 0, NULL);
    }
    struct held *slot = &q->ring[(q->head + q->count) % RING];
    slot->id = id;
    slot->due = now_ns() + q->delay_ns;
    q->count++;
    if (q->count > q->max_held) q->max_held = q->count;
    return 0;
}

/* Accepts every packet whose time has come; returns the earliest time still pending (or -1). */
static int64_t release(int64_t now) {
    int64_t next = -1;
    for (int i = 0; i < queue_count; i++) {
        struct queue *q = &queues[i];
        uint32_t last = 0;
        int any = 0;
        while (q->count > 0 && q->ring[q->head].due <= now) {
            last = q->ring[q->head].id;
            any = 1;
            q->head = (q->head + 1) % RING;
            q->count--;
        }
        if (any) {
            nfq_set_verdict_batch(q->handle, last, NF_ACCEPT);
            q->batches++;
        }
        if (q->count > 0 && (next < 0 || q->ring[q->head].due < next)) next = q->ring[q->head].due;
    }
    return next;
}

int main(int argc, char **argv) {
    if (argc < 2 || argc - 1 > MAX_QUEUES) {
        fprintf(stderr, "usage: %s QUEUE:MILLISECONDS [QUEUE:MILLISECONDS ...] (1 to %d queues)\n", argv[0], MAX_QUEUES);
        return 2;
    }
    struct nfq_handle *h = nfq_open();
    if (h == NULL) {
        fprintf(stderr, "link-delayer: nfq_open failed (%s); run as root in a kernel with NFQUEUE\n", strerror(errno));
        return 1;
    }
    for (int i = 1; i < argc; i++) {
        unsigned number;
        double ms;
        if (sscanf(argv[i], "%u:%lf", &number, &ms) != 2 || number > 65535 || ms < 0) {
            fprintf(stderr, "link-delayer: bad argument '%s'; expected QUEUE:MILLISECONDS, e.g. 0:20\n", argv[i]);
            return 2;
        }
        struct queue *q = &queues[queue_count++];
        q->number = (uint16_t)number;
        q->delay_ns = (int64_t)(ms * 1e6);
        q->ring = calloc(RING, sizeof(struct held));
        q->handle = nfq_create_queue(h, q->number, on_packet, q);
        if (q->ring == NULL || q->handle == NULL) {
            fprintf(stderr, "link-delayer: cannot bind queue %u (%s); is another program bound to it?\n", number, strerror(errno));
            return 1;
        }
        if (nfq_set_mode(q->handle, NFQNL_COPY_META, 0) < 0) {
            fprintf(stderr, "link-delayer: cannot set metadata-only mode on queue %u\n", number);
            return 1;
        }
        if (nfq_set_queue_maxlen(q->handle, KERNEL_QUEUE_LENGTH) < 0) {
            fprintf(stderr, "link-delayer: cannot raise the length of queue %u\n", number);
            return 1;
        }
    }
    int fd = nfq_fd(h);
    nfnl_rcvbufsiz(nfq_nfnlh(h), SOCKET_BUFFER);
    int on = 1;
    /* A full socket buffer should drop packets, not stop the program with ENOBUFS. */
    setsockopt(fd, SOL_NETLINK, NETLINK_NO_ENOBUFS, &on, sizeof on);

    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal;
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    printf("ready\n");
    fflush(stdout);

    static char buffer[1 << 16];
    int64_t next = -1;
    while (!stopping) {
        struct pollfd p = { .fd = fd, .events = POLLIN };
        struct timespec wait = { .tv_sec = 1, .tv_nsec = 0 };
        if (next >= 0) {
            int64_t left = next - now_ns();
            if (left < 0) left = 0;
            wait.tv_sec = left / 1000000000;
            wait.tv_nsec = left % 1000000000;
        }
        int ready = ppoll(&p, 1, &wait, NULL);
        if (ready < 0 && errno != EINTR) { perror("link-delayer: ppoll"); return 1; }
        if (ready > 0) {
            /* Drain what is there, then release. */
            for (int n = 0; n < 4096; n++) {
                ssize_t got = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
                if (got < 0) break;
                nfq_handle_packet(h, buffer, (int)got);
            }
        }
        next = release(now_ns());
    }
    for (int i = 0; i < queue_count; i++) {
        struct queue *q = &queues[i];
        fprintf(stderr, "queue %u: %.1f ms, %llu packets, %llu batches, at most %llu held, %llu overflowed\n",
                q->number, q->delay_ns / 1e6, (unsigned long long)q->packets, (unsigned long long)q->batches,
                (unsigned long long)q->max_held, (unsigned long long)q->overflow);
        nfq_destroy_queue(q->handle);
    }
    nfq_close(h);
    return 0;
}
