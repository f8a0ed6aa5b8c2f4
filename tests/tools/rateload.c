/* rateload: an open-loop HTTP/1.1 load client in the manner of wrk2, for the load tests.
 *
 *   rateload HOST PORT PATH RATE SECONDS [MARKER]
 *
 * Request i is due at t0 + i/RATE whatever happened before; its latency counts from that due
 * time (no coordinated omission), so a server that falls behind shows in the figures. Requests
 * go out on keep-alive connections; when every connection is busy a new one is opened (up to
 * MAX_CONNS), else the request waits, its clock running. One thread, epoll.
 *
 * Prints one JSON object: sent, ok, errors, marked (answers whose body holds MARKER), late_max_ms
 * (how late a request went out at worst: the client's own lateness, or all 64 connections busy),
 * and p50/p90/p99/p999/max in ms. Requests still unanswered 30 s after the last one was due
 * count as errors (a server that stops answering does not hang the client).
 * Exit 0 unless the arguments are wrong or nothing can be measured.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CONNS 64
#define BUF 65536

struct conn {
    int fd;
    int busy;
    double due, sent_at;
    size_t got;
    char buf[BUF];
};

static struct conn conns[MAX_CONNS];
static int nconns;
static struct sockaddr_in addr;
static char request[512];
static size_t request_len;
static const char *marker;
static double *lat;
static long nlat, ok, errors, marked;
static double late_max;

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int cmp(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* A new connected, non-blocking socket watched by epoll as connection `slot`; -1 on failure. */
static int dial(int ep, int slot) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0) {
        close(fd);
        return -1;
    }
    fcntl(fd, F_SETFL, O_NONBLOCK);
    struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (unsigned)slot};
    epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
    return fd;
}

static int open_conn(int ep) {
    if (nconns == MAX_CONNS) return -1;
    int fd = dial(ep, nconns);
    if (fd < 0) return -1;
    struct conn *c = &conns[nconns];
    memset(c, 0, sizeof *c - BUF);
    c->fd = fd;
    return nconns++;
}

static void reopen(int ep, int i) {
    /* A closed or broken connection: replace it in place (a failed dial shows as a send error). */
    if (conns[i].fd >= 0) {
        epoll_ctl(ep, EPOLL_CTL_DEL, conns[i].fd, NULL);
        close(conns[i].fd);
    }
    conns[i].fd = dial(ep, i);
    conns[i].busy = 0;
    conns[i].got = 0;
}

static int send_on(int i, double due) {
    struct conn *c = &conns[i];
    ssize_t n = send(c->fd, request, request_len, MSG_NOSIGNAL);
    if (n != (ssize_t)request_len) return -1;
    c->busy = 1;
    c->due = due;
    c->got = 0;
    c->sent_at = now();
    if (c->sent_at - due > late_max) late_max = c->sent_at - due;
    return 0;
}

/* 1: a whole response is in; 0: need more; -1: malformed. */
static int complete(struct conn *c, int *status) {
    c->buf[c->got < BUF ? c->got : BUF - 1] = 0;
    char *end = strstr(c->buf, "\r\n\r\n");
    if (!end) return c->got >= BUF - 1 ? -1 : 0;
    if (strncmp(c->buf, "HTTP/1.", 7) != 0) return -1;
    *status = atoi(c->buf + 9);
    char *cl = strcasestr(c->buf, "\r\ncontent-length:");
    if (!cl || cl > end) return -1;
    size_t need = (size_t)(end + 4 - c->buf) + strtoul(cl + 17, NULL, 10);
    if (need >= BUF) return -1;
    return c->got >= need;
}

int main(int argc, char **argv) {
    if (argc < 6) {
        fprintf(stderr, "usage: rateload HOST PORT PATH RATE SECONDS [MARKER]\n");
        return 2;
    }
    addr.sin_family = AF_INET;
    addr.sin_port = htons((unsigned short)atoi(argv[2]));
    if (inet_pton(AF_INET, argv[1], &addr.sin_addr) != 1) {
        fprintf(stderr, "rateload: HOST must be an IPv4 address\n");
        return 2;
    }
    double rate = atof(argv[4]), seconds = atof(argv[5]);
    marker = argc > 6 ? argv[6] : NULL;
    long total = (long)(rate * seconds);
    if (rate <= 0 || total <= 0) return 2;
    request_len = (size_t)snprintf(request, sizeof request,
                                   "GET %s HTTP/1.1\r\nHost: %s:%s\r\nAccept: */*\r\n\r\n",
                                   argv[3], argv[1], argv[2]);
    lat = calloc((size_t)total, sizeof *lat);
    int ep = epoll_create1(0);
    for (int i = 0; i < 8; i++) open_conn(ep);
    if (nconns == 0) {
        fprintf(stderr, "rateload: cannot connect to %s:%s\n", argv[1], argv[2]);
        return 1;
    }
    double t0 = now() + 0.05;
    long next = 0, done = 0;
    struct epoll_event evs[MAX_CONNS];
    double give_up = t0 + seconds + 30.0;
    while (done < total) {
        double t = now();
        if (t > give_up) {
            errors += total - done;
            break;
        }
        while (next < total && t0 + next / rate <= t) {
            int idle = -1;
            for (int i = 0; i < nconns; i++)
                if (!conns[i].busy) { idle = i; break; }
            if (idle < 0) idle = open_conn(ep);
            if (idle < 0) break; /* all busy: it waits, its clock running */
            if (send_on(idle, t0 + next / rate) != 0) {
                errors++;
                done++;
                reopen(ep, idle);
            }
            next++;
        }
        int wait_ms = 1;
        if (next < total) {
            double gap = t0 + next / rate - now();
            wait_ms = gap <= 0 ? 0 : (int)(gap * 1000) + 1;
            for (int i = 0; i < nconns; i++)
                if (!conns[i].busy) goto have_idle;
            wait_ms = 1; /* all busy: look again soon */
        have_idle:;
        }
        int n = epoll_wait(ep, evs, MAX_CONNS, wait_ms);
        for (int k = 0; k < n; k++) {
            int i = (int)evs[k].data.u32;
            struct conn *c = &conns[i];
            ssize_t r = recv(c->fd, c->buf + c->got, BUF - 1 - c->got, 0);
            if (r < 0 && (errno == EAGAIN || errno == EINTR)) continue;
            int status = 0, whole = r > 0 ? (c->got += (size_t)r, complete(c, &status)) : -1;
            if (whole == 0) continue;
            if (c->busy) {
                done++;
                if (whole == 1 && status == 200) {
                    ok++;
                    lat[nlat++] = now() - c->due;
                    if (marker && memmem(c->buf, c->got, marker, strlen(marker))) marked++;
                } else {
                    errors++;
                }
            }
            if (whole == 1 && c->busy) {
                c->busy = 0;
                c->got = 0;
            } else {
                reopen(ep, i);
            }
        }
    }
    if (nlat == 0) {
        printf("{\"sent\": %ld, \"ok\": 0, \"errors\": %ld}\n", total, errors);
        return 1;
    }
    qsort(lat, (size_t)nlat, sizeof *lat, cmp);
#define PCT(p) (lat[(long)((nlat - 1) * (p) / 100.0)] * 1000)
    printf("{\"sent\": %ld, \"ok\": %ld, \"errors\": %ld, \"marked\": %ld, \"connections\": %d, "
           "\"late_max_ms\": %.3f, \"p50_ms\": %.3f, \"p90_ms\": %.3f, \"p99_ms\": %.3f, "
           "\"p999_ms\": %.3f, \"max_ms\": %.3f}\n",
           total, ok, errors, marked, nconns, late_max * 1000, PCT(50), PCT(90), PCT(99),
           PCT(99.9), lat[nlat - 1] * 1000);
    return 0;
}
