/* list.h: intrusive circular doubly linked list with a sentinel head. */
#ifndef CN_LIST_H
#define CN_LIST_H

#include "coronet.h"

static inline void cn_list_init(cn_list *head) { head->next = head->prev = head; }
static inline int cn_list_empty(const cn_list *head) { return head->next == head; }
/* A link that was initialised or removed points at itself. */
static inline int cn_list_linked(const cn_list *link) { return link->next != link; }

static inline void cn_list_push(cn_list *head, cn_list *link) {
  link->prev = head->prev;
  link->next = head;
  head->prev->next = link;
  head->prev = link;
}

static inline void cn_list_remove(cn_list *link) {
  link->prev->next = link->next;
  link->next->prev = link->prev;
  cn_list_init(link);
}

static inline cn_list *cn_list_first(cn_list *head) { return cn_list_empty(head) ? NULL : head->next; }

#endif
