/* echo: prints its arguments separated by spaces, then a newline, in one
 * write (cut at 1024 bytes). Plain string calls and write: no printf. */
#include <string.h>
#include <unistd.h>

int main(int argc, char **argv)
{
    char line[1024];
    size_t len = 0;
    for (int i = 1; i < argc; i++) {
        size_t n = strlen(argv[i]);
        if (len + (i > 1) + n + 1 > sizeof(line))
            break; /* longer than a line: cut */
        if (i > 1)
            line[len++] = ' ';
        memcpy(line + len, argv[i], n);
        len += n;
    }
    line[len++] = '\n';
    return write(STDOUT_FILENO, line, len) == (ssize_t)len ? 0 : 1;
}
