/* ordinary: not hostile; the control that shows the default jail still runs
 * an ordinary C program: reads integers from /box/input.txt, writes them
 * sorted with their sum to /box/output.txt, and prints "done <count>". */
#include <stdio.h>
#include <stdlib.h>

static int ascending(const void *a, const void *b)
{
    long x = *(const long *)a, y = *(const long *)b;

    return (x > y) - (x < y);
}

int main(void)
{
    long *numbers = NULL, sum = 0, value;
    size_t count = 0, capacity = 0;
    FILE *in = fopen("/box/input.txt", "r"), *out;

    if (!in) {
        perror("/box/input.txt");
        return 1;
    }
    while (fscanf(in, "%ld", &value) == 1) {
        if (count == capacity) {
            capacity = capacity ? 2 * capacity : 16;
            numbers = realloc(numbers, capacity * sizeof *numbers);
            if (!numbers)
                return 1;
        }
        numbers[count++] = value;
        sum += value;
    }
    fclose(in);
    qsort(numbers, count, sizeof *numbers, ascending);
    out = fopen("/box/output.txt", "w");
    if (!out) {
        perror("/box/output.txt");
        return 1;
    }
    for (size_t i = 0; i < count; i++)
        fprintf(out, "%ld ", numbers[i]);
    fprintf(out, "\nsum %ld\n", sum);
    if (fclose(out) != 0)
        return 1;
    free(numbers);
    printf("done %zu\n", count);
    return 0;
}
