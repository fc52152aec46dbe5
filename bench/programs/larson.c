/* larson: a server-like allocation workload of our own (after the idea of
 * Larson and Krishnan's benchmark; no code of it): T chains of worker
 * threads, each chain owning an array of slots holding live objects. A
 * worker makes R replacements (free a random slot's object, allocate one of
 * a random size in [min, max] in its place), then starts its chain's next
 * worker on a new thread and exits; the successor frees what its
 * predecessor allocated (objects change threads, and threads come and go,
 * as in a server handing connections to fresh threads). G generations per
 * chain.
 *
 * Output is deterministic whatever the allocator or the scheduling (each
 * chain has its own random stream, and a chain's workers run one after
 * another): a checksum over the sizes and the bytes read back from every
 * object before it is freed, so a heap that lost or overlapped a block
 * changes it. Times are measured outside (bench/programs/run.py, callgrind).
 *
 *   larson [-t chains] [-s slots] [-m min] [-M max] [-r replacements]
 *          [-g generations] [-w] [-S seed]
 *   -w: fill every object entirely (default: its first byte and its last)
 * Defaults: -t 2 -s 1000 -m 8 -M 1000 -r 50000 -g 20 -S 1. */
#define _GNU_SOURCE
#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct params {
    unsigned chains, slots, generations;
    size_t min, max;
    unsigned long replacements;
    int fill_all;
    uint64_t seed;
};

struct chain {
    const struct params *p;
    unsigned id, generation;
    uint64_t rng;
    unsigned char **slot;
    size_t *size;
    uint64_t *tag;
    uint64_t checksum;
    pthread_mutex_t done_lock;
    pthread_cond_t done_cond;
    int done;
};

static uint64_t next(uint64_t *s) /* xorshift64* */
{
    uint64_t x = *s;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    *s = x;
    return x * 2685821657736338717ull;
}

/* Each slot's size and tag are kept beside it (so objects may be 1 byte);
 * the object holds the tag's low byte first and its next byte last (-w: in
 * every byte but the last). */
static unsigned char *make(struct chain *c, unsigned k, size_t n)
{
    unsigned char *o = malloc(n);
    if (!o) {
        fprintf(stderr, "larson: out of memory (%zu bytes)\n", n);
        exit(1);
    }
    uint64_t tag = next(&c->rng);
    if (c->p->fill_all)
        memset(o, (int)(tag & 0xff), n);
    o[0] = (unsigned char)tag;
    o[n - 1] = (unsigned char)(tag >> 8);
    c->size[k] = n;
    c->tag[k] = tag;
    return o;
}

static void drop(struct chain *c, unsigned k)
{
    unsigned char *o = c->slot[k];
    size_t n = c->size[k];
    uint64_t tag = c->tag[k];
    unsigned char first = n > 1 ? (unsigned char)tag : (unsigned char)(tag >> 8);
    unsigned char mid = c->p->fill_all && n > 2 ? o[n / 2] : (unsigned char)tag;
    if (o[0] != first || o[n - 1] != (unsigned char)(tag >> 8) || mid != (unsigned char)tag) {
        fprintf(stderr, "larson: object %p (size %zu) damaged\n", (void *)o, n);
        exit(1);
    }
    c->checksum = c->checksum * 1000003u + n + (tag & 0xffff);
    free(o);
}

static void *worker(void *arg)
{
    struct chain *c = arg;
    const struct params *p = c->p;
    size_t span = p->max - p->min + 1;
    for (unsigned long i = 0; i < p->replacements; i++) {
        unsigned k = (unsigned)(next(&c->rng) % p->slots);
        drop(c, k);
        c->slot[k] = make(c, k, p->min + (size_t)(next(&c->rng) % span));
    }
    if (++c->generation < p->generations) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, worker, c) != 0) {
            fprintf(stderr, "larson: pthread_create failed\n");
            exit(1);
        }
        pthread_attr_destroy(&a);
    } else {
        pthread_mutex_lock(&c->done_lock);
        c->done = 1;
        pthread_cond_signal(&c->done_cond);
        pthread_mutex_unlock(&c->done_lock);
    }
    return NULL;
}

static unsigned long num(const char *s, const char *what)
{
    char *end;
    unsigned long v = strtoul(s, &end, 0);
    if (*end || !*s) {
        fprintf(stderr, "larson: bad %s '%s'\n", what, s);
        exit(2);
    }
    return v;
}

int main(int argc, char **argv)
{
    struct params p = {2, 1000, 20, 8, 1000, 50000, 0, 1};
    int opt;
    while ((opt = getopt(argc, argv, "t:s:m:M:r:g:wS:")) != -1) {
        switch (opt) {
        case 't': p.chains = (unsigned)num(optarg, "chains"); break;
        case 's': p.slots = (unsigned)num(optarg, "slots"); break;
        case 'm': p.min = num(optarg, "min"); break;
        case 'M': p.max = num(optarg, "max"); break;
        case 'r': p.replacements = num(optarg, "replacements"); break;
        case 'g': p.generations = (unsigned)num(optarg, "generations"); break;
        case 'w': p.fill_all = 1; break;
        case 'S': p.seed = num(optarg, "seed"); break;
        default:
            fprintf(stderr, "usage: larson [-t chains] [-s slots] [-m min] [-M max] "
                            "[-r replacements] [-g generations] [-w] [-S seed]\n");
            return 2;
        }
    }
    if (p.chains < 1 || p.slots < 1 || p.generations < 1 || p.min < 1 || p.max < p.min) {
        fprintf(stderr, "larson: need chains, slots, generations >= 1 and 1 <= min <= max\n");
        return 2;
    }
    struct chain *c = calloc(p.chains, sizeof(*c));
    for (unsigned i = 0; i < p.chains; i++) {
        c[i].p = &p;
        c[i].id = i;
        c[i].rng = p.seed * 0x9e3779b97f4a7c15ull + i + 1;
        c[i].slot = malloc(p.slots * sizeof(*c[i].slot));
        c[i].size = malloc(p.slots * sizeof(*c[i].size));
        c[i].tag = malloc(p.slots * sizeof(*c[i].tag));
        pthread_mutex_init(&c[i].done_lock, NULL);
        pthread_cond_init(&c[i].done_cond, NULL);
        for (unsigned k = 0; k < p.slots; k++) /* the first generation's objects: main's */
            c[i].slot[k] = make(&c[i], k, p.min + (size_t)(next(&c[i].rng) % (p.max - p.min + 1)));
    }
    for (unsigned i = 0; i < p.chains; i++) {
        pthread_t t;
        pthread_attr_t a;
        pthread_attr_init(&a);
        pthread_attr_setdetachstate(&a, PTHREAD_CREATE_DETACHED);
        if (pthread_create(&t, &a, worker, &c[i]) != 0) {
            fprintf(stderr, "larson: pthread_create failed\n");
            return 1;
        }
        pthread_attr_destroy(&a);
    }
    uint64_t sum = 0;
    for (unsigned i = 0; i < p.chains; i++) {
        pthread_mutex_lock(&c[i].done_lock);
        while (!c[i].done)
            pthread_cond_wait(&c[i].done_cond, &c[i].done_lock);
        pthread_mutex_unlock(&c[i].done_lock);
        for (unsigned k = 0; k < p.slots; k++) /* freed by main: another thread again */
            drop(&c[i], k);
        free(c[i].slot);
        free(c[i].size);
        free(c[i].tag);
        sum = sum * 31 + c[i].checksum;
    }
    free(c);
    printf("larson: chains=%u slots=%u sizes=%zu..%zu replacements=%lu generations=%u "
           "checksum=%016" PRIx64 "\n",
           p.chains, p.slots, p.min, p.max, p.replacements, p.generations, sum);
    return 0;
}
