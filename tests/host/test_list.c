/* The intrusive list (lib/list.h): empty lists, push front and back, removal
 * from the front, middle and back without the head, iteration (also while
 * removing), list_entry, list_valid on broken links, and a random run
 * against an array model. */
#include <criterion/criterion.h>

#include "lib/list.h"

struct item {
    int value;
    struct list_node link;
    int after; /* a field after the node: list_entry must not depend on the node being first */
};

/* The values on the list, front to back, into out (at most max); returns the count. */
static size_t values(const struct list_node *head, int *out, size_t max)
{
    size_t n = 0;
    const struct list_node *p;
    list_for_each(p, head)
    {
        if (n < max)
            out[n] = list_entry(p, const struct item, link)->value;
        n++;
    }
    return n;
}

Test(list, empty_list)
{
    struct list_node head;
    list_init(&head);
    cr_assert(list_empty(&head));
    cr_assert_null(list_first(&head));
    cr_assert_eq(list_count(&head, 10), 0);
    cr_assert(list_valid(&head, 0));
    int v[1];
    cr_assert_eq(values(&head, v, 1), 0);
}

Test(list, push_front_and_back_keep_order)
{
    struct list_node head;
    struct item it[4] = {{.value = 0}, {.value = 1}, {.value = 2}, {.value = 3}};
    list_init(&head);
    list_push(&head, &it[1].link);
    list_push(&head, &it[0].link);
    list_push_back(&head, &it[2].link);
    list_push_back(&head, &it[3].link);
    int v[4];
    cr_assert_eq(values(&head, v, 4), 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(v[i], i);
    cr_assert(!list_empty(&head));
    cr_assert_eq(list_first(&head), &it[0].link);
    cr_assert_eq(list_entry(list_first(&head), struct item, link), &it[0]);
    cr_assert(list_valid(&head, 4));
    cr_assert_eq(head.prev, &it[3].link);
}

Test(list, remove_needs_no_head_and_clears_links)
{
    struct list_node head;
    struct item it[5];
    list_init(&head);
    for (int i = 0; i < 5; i++) {
        it[i].value = i;
        list_push_back(&head, &it[i].link);
        cr_assert(list_linked(&it[i].link));
    }
    list_remove(&it[2].link); /* middle */
    list_remove(&it[0].link); /* front */
    list_remove(&it[4].link); /* back */
    cr_assert(!list_linked(&it[0].link) && !list_linked(&it[2].link) && !list_linked(&it[4].link));
    cr_assert_null(it[2].link.prev);
    int v[5];
    cr_assert_eq(values(&head, v, 5), 2);
    cr_assert_eq(v[0], 1);
    cr_assert_eq(v[1], 3);
    cr_assert(list_valid(&head, 5));
    list_remove(&it[1].link);
    list_remove(&it[3].link);
    cr_assert(list_empty(&head));
    cr_assert(list_valid(&head, 0));
    /* a removed node can go on again */
    list_push(&head, &it[3].link);
    cr_assert_eq(list_first(&head), &it[3].link);
}

Test(list, for_each_safe_removes_while_iterating)
{
    struct list_node head, *n, *tmp;
    struct item it[6];
    list_init(&head);
    for (int i = 0; i < 6; i++) {
        it[i].value = i;
        list_push_back(&head, &it[i].link);
    }
    list_for_each_safe(n, tmp, &head)
    {
        if (list_entry(n, struct item, link)->value % 2 == 0)
            list_remove(n);
    }
    int v[6];
    cr_assert_eq(values(&head, v, 6), 3);
    cr_assert(v[0] == 1 && v[1] == 3 && v[2] == 5);
    cr_assert(list_valid(&head, 6));
}

Test(list, valid_refuses_broken_links_and_loops)
{
    struct list_node head;
    struct item it[3];
    list_init(&head);
    for (int i = 0; i < 3; i++)
        list_push_back(&head, &it[i].link);
    cr_assert(list_valid(&head, 3));
    cr_assert(!list_valid(&head, 1)); /* longer than the limit */
    struct list_node *saved = it[1].link.prev;
    it[1].link.prev = &head; /* a broken back link */
    cr_assert(!list_valid(&head, 3));
    it[1].link.prev = saved;
    cr_assert(list_valid(&head, 3));
    it[2].link.next = &it[1].link; /* a loop that never returns to head */
    cr_assert(!list_valid(&head, 100));
    cr_assert_eq(list_count(&head, 10), 11); /* ends at limit + 1 */
}

/* Random pushes and removals checked against an array holding the order. */
Test(list, random_run_matches_model)
{
    enum { N = 64 };
    struct list_node head;
    struct item it[N];
    int model[N], len = 0;
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    list_init(&head);
    for (int i = 0; i < N; i++) {
        it[i].value = i;
        it[i].link.next = it[i].link.prev = NULL;
    }
    for (int step = 0; step < 20000; step++) {
        rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
        int k = (int)(rng % N);
        if (list_linked(&it[k].link)) {
            list_remove(&it[k].link);
            int j = 0;
            while (model[j] != k)
                j++;
            for (; j + 1 < len; j++)
                model[j] = model[j + 1];
            len--;
        } else if (rng & (1ull << 40)) {
            list_push(&head, &it[k].link);
            for (int j = len; j > 0; j--)
                model[j] = model[j - 1];
            model[0] = k;
            len++;
        } else {
            list_push_back(&head, &it[k].link);
            model[len++] = k;
        }
        if (step % 97 == 0) {
            int v[N];
            cr_assert_eq(values(&head, v, N), (size_t)len);
            for (int j = 0; j < len; j++)
                cr_assert_eq(v[j], model[j], "step %d position %d", step, j);
            cr_assert(list_valid(&head, N));
            cr_assert_eq(list_empty(&head), len == 0);
        }
    }
}
