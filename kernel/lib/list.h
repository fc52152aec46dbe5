/* An intrusive, circular doubly linked list with a sentinel head.
 *
 * A structure that lives on a list embeds a `struct list_node`; the list
 * itself is a `struct list_node` used as the sentinel. Invariants:
 *   - an initialised, empty list is a sentinel whose next and prev point at
 *     itself (list_init); a zeroed sentinel is NOT a valid list;
 *   - for every node n on a list, n->next->prev == n and n->prev->next == n;
 *   - a node is on at most one list at a time; list_remove leaves it with
 *     NULL links, so list_linked() tells whether it is on one.
 * Insertion and removal are O(1) and need no pointer to the list's head.
 * No allocation, no locking: the caller owns both. Header-only (portable:
 * the heap's hot paths inline it). */
#pragma once

#include "lib/types.h"

struct list_node {
    struct list_node *next, *prev;
};

/* The structure of type `type` whose member `member` is the node at ptr. */
#define list_entry(ptr, type, member) ((type *)((char *)(ptr)-__builtin_offsetof(type, member)))

/* A static initializer for an empty list whose sentinel is `name`. */
#define LIST_INIT(name) {&(name), &(name)}

/* Makes head an empty list. */
static inline void list_init(struct list_node *head)
{
    head->next = head->prev = head;
}

/* True when the list at head holds no node. */
static inline bool list_empty(const struct list_node *head)
{
    return head->next == head;
}

/* True when n is on some list (it was inserted and not removed since). */
static inline bool list_linked(const struct list_node *n)
{
    return n->next != NULL;
}

/* Inserts n (on no list) right after `at` (a node or a head). */
static inline void list_insert_after(struct list_node *at, struct list_node *n)
{
    struct list_node *next = at->next;
    n->prev = at;
    n->next = next;
    next->prev = n;
    at->next = n;
}

/* Inserts n (on no list) at the front of the list at head. */
static inline void list_push(struct list_node *head, struct list_node *n)
{
    list_insert_after(head, n);
}

/* Inserts n (on no list) at the back of the list at head. */
static inline void list_push_back(struct list_node *head, struct list_node *n)
{
    list_insert_after(head->prev, n);
}

/* Unlinks n from its list and clears its links (n must be on a list). */
static inline void list_remove(struct list_node *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->next = n->prev = NULL;
}

/* The first node of the list at head, or NULL when it is empty. */
static inline struct list_node *list_first(const struct list_node *head)
{
    return list_empty(head) ? NULL : head->next;
}

/* Iterates n over the nodes of the list at head, front to back. The body
 * must not remove n (use list_for_each_safe). */
#define list_for_each(n, head) for ((n) = (head)->next; (n) != (head); (n) = (n)->next)

/* Like list_for_each, but the body may remove n (tmp holds the next node). */
#define list_for_each_safe(n, tmp, head)                                                           \
    for ((n) = (head)->next, (tmp) = (n)->next; (n) != (head); (n) = (tmp), (tmp) = (n)->next)

/* Iterates pos (a pointer to the embedding structure) over the list at head,
 * whose nodes are pos's `member`. The body must not remove pos. */
#define list_for_each_entry(pos, head, member)                                                     \
    for ((pos) = list_entry((head)->next, __typeof__(*(pos)), member); &(pos)->member != (head);   \
         (pos) = list_entry((pos)->member.next, __typeof__(*(pos)), member))

/* Like list_for_each_entry, but the body may remove pos (tmp: the next one). */
#define list_for_each_entry_safe(pos, tmp, head, member)                                           \
    for ((pos) = list_entry((head)->next, __typeof__(*(pos)), member),                             \
        (tmp) = list_entry((pos)->member.next, __typeof__(*(pos)), member);                        \
         &(pos)->member != (head);                                                                 \
         (pos) = (tmp), (tmp) = list_entry((pos)->member.next, __typeof__(*(pos)), member))

/* Nodes on the list at head, counting at most `limit` + 1 (so a list whose
 * links loop without reaching head still ends). O(length). */
static inline size_t list_count(const struct list_node *head, size_t limit)
{
    size_t n = 0;
    for (const struct list_node *p = head->next; p != head && n <= limit; p = p->next)
        n++;
    return n;
}

/* True when the list at head is well formed: every node's neighbours point
 * back at it and the walk returns to head within `limit` nodes. For
 * consistency checkers; never writes. */
static inline bool list_valid(const struct list_node *head, size_t limit)
{
    const struct list_node *p = head;
    for (size_t n = 0; n <= limit + 1; n++) {
        if (!p->next || !p->prev || p->next->prev != p || p->prev->next != p)
            return false;
        p = p->next;
        if (p == head)
            return true;
    }
    return false;
}
