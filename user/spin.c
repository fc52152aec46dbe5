/* spin: runs forever on the CPU, printing nothing and making no system
 * call: what the scheduler must preempt and `kill` must end. */
int main(void)
{
    volatile unsigned long n = 0;
    for (;;)
        n++;
}
