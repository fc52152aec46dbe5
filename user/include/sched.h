#pragma once

/* sched_yield: lets the other runnable threads run first; 0. */
int sched_yield(void);
