/* echo: prints its arguments separated by spaces, then a newline (one write). */
#include <stdio.h>
#include <string.h>

int main(int argc, char **argv)
{
    char line[PRINTF_MAX];
    size_t len = 0;
    line[0] = 0;
    for (int i = 1; i < argc; i++) {
        int n = snprintf(line + len, sizeof(line) - len, "%s%s", i > 1 ? " " : "", argv[i]);
        if (n < 0 || (size_t)n >= sizeof(line) - len)
            break; /* longer than a line: cut */
        len += (size_t)n;
    }
    return puts(line) < 0;
}
