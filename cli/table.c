/* Human output: aligned tables for lists, "key: value" blocks for single
 * records. Text from the controller is shown with control characters
 * replaced, so a crafted name cannot drive the terminal. */
#include <stdlib.h>
#include <string.h>

#include "cli/cli.h"

const char *cli_str(const json_t *obj, const char *key)
{
    const char *s = json_string_value(json_object_get(obj, key));
    return s ? s : "";
}

static void sanitize(char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            *s = '?';
}

static char *array_text(const json_t *v)
{
    size_t i, total = 1;
    json_t *it;
    char **parts = calloc(json_array_size(v) + 1, sizeof(char *));
    char *out = NULL;
    if (parts == NULL)
        return NULL;
    json_array_foreach(v, i, it)
    {
        parts[i] = cli_json_text(it);
        if (parts[i] == NULL)
            goto out;
        total += strlen(parts[i]) + 1;
    }
    out = malloc(total);
    if (out == NULL)
        goto out;
    out[0] = '\0';
    json_array_foreach(v, i, it)
    {
        if (i > 0)
            strcat(out, ",");
        strcat(out, parts[i]); /* total counted every part and separator */
    }
out:
    for (i = 0; i < json_array_size(v); i++)
        free(parts[i]);
    free(parts);
    return out;
}

char *cli_json_text(const json_t *v)
{
    char *s;
    if (v == NULL) /* a column the record does not have */
        return strdup("-");
    switch (json_typeof(v)) {
    case JSON_STRING:
        s = strdup(json_string_value(v));
        break;
    case JSON_TRUE:
        s = strdup("yes");
        break;
    case JSON_FALSE:
        s = strdup("no");
        break;
    case JSON_ARRAY:
        s = json_array_size(v) ? array_text(v) : strdup("-");
        break;
    case JSON_INTEGER:
    case JSON_REAL:
    case JSON_OBJECT:
        s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        break;
    default:
        s = strdup("-");
        break;
    }
    if (s != NULL && s[0] == '\0') {
        free(s);
        s = strdup("-");
    }
    if (s != NULL)
        sanitize(s);
    return s;
}

static size_t display_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xc0) != 0x80) /* count UTF-8 lead bytes only */
            w++;
    return w;
}

static void print_cell(FILE *f, const char *s, size_t width, int last)
{
    fputs(s, f);
    if (last) {
        fputc('\n', f);
        return;
    }
    for (size_t w = display_width(s); w < width + 2; w++)
        fputc(' ', f);
}

void cli_table_print(FILE *f, const cli_col *cols, size_t ncols, const json_t *rows)
{
    size_t nrows = json_array_size(rows);
    char **cells = calloc(nrows * ncols + 1, sizeof(char *));
    size_t *widths = calloc(ncols, sizeof(size_t));
    if (cells == NULL || widths == NULL)
        goto out;
    for (size_t c = 0; c < ncols; c++)
        widths[c] = strlen(cols[c].header);
    for (size_t r = 0; r < nrows; r++) {
        for (size_t c = 0; c < ncols; c++) {
            json_t *v = json_object_get(json_array_get(rows, r), cols[c].key);
            char *s = cli_json_text(v);
            cells[r * ncols + c] = s ? s : strdup("?");
            if (cells[r * ncols + c] && display_width(cells[r * ncols + c]) > widths[c])
                widths[c] = display_width(cells[r * ncols + c]);
        }
    }
    for (size_t c = 0; c < ncols; c++)
        print_cell(f, cols[c].header, widths[c], c + 1 == ncols);
    for (size_t r = 0; r < nrows; r++)
        for (size_t c = 0; c < ncols; c++) {
            const char *s = cells[r * ncols + c];
            print_cell(f, s ? s : "?", widths[c], c + 1 == ncols);
        }
out:
    if (cells != NULL)
        for (size_t i = 0; i < nrows * ncols; i++)
            free(cells[i]);
    free(cells);
    free(widths);
}

/* Nested objects print as "outer.inner: value" lines. */
static size_t key_width(const json_t *obj, size_t prefix)
{
    const char *key;
    json_t *v;
    size_t w = 0, k;
    json_object_foreach((json_t *)obj, key, v)
    {
        k = prefix + strlen(key);
        if (json_is_object(v) && json_object_size(v) > 0)
            k = key_width(v, k + 1);
        if (k > w)
            w = k;
    }
    return w;
}

static void print_fields(FILE *f, const json_t *obj, const char *prefix, size_t width)
{
    const char *key;
    json_t *v;
    char full[256];
    json_object_foreach((json_t *)obj, key, v)
    {
        int n = snprintf(full, sizeof(full), "%s%s%s", prefix, prefix[0] ? "." : "", key);
        if (n < 0 || (size_t)n >= sizeof(full))
            continue; /* a key this long is not for humans; --json shows it */
        if (json_is_object(v) && json_object_size(v) > 0) {
            print_fields(f, v, full, width);
            continue;
        }
        char *s = cli_json_text(v);
        if (s != NULL) {
            sanitize(full);
            size_t len = strlen(full);
            fprintf(f, "%s:%*s %s\n", full, (int)(width > len ? width - len : 0), "", s);
        }
        free(s);
    }
}

void cli_object_print(FILE *f, const json_t *obj)
{
    size_t width = key_width(obj, 0);
    print_fields(f, obj, "", width < 200 ? width : 200);
}

int cli_list_print(const cli_ctx *c, const json_t *resp, const cli_col *cols, size_t ncols)
{
    const json_t *data = json_object_get(resp, "data");
    const json_t *meta = json_object_get(resp, "meta");
    if (!json_is_array(data))
        return cli_fail("the controller's answer has no \"data\" list; check that --controller "
                        "points to a weft controller");
    if (c->json)
        return CLI_OK;
    cli_table_print(stdout, cols, ncols, data);
    json_int_t total = json_integer_value(json_object_get(meta, "total"));
    json_int_t offset = json_integer_value(json_object_get(meta, "offset"));
    if (total > (json_int_t)json_array_size(data))
        fprintf(stderr, "(%zu shown, %lld to %lld of %lld; use --limit and --offset for more)\n",
                json_array_size(data), (long long)offset + (json_array_size(data) ? 1 : 0),
                (long long)offset + (long long)json_array_size(data), (long long)total);
    return CLI_OK;
}

int cli_show_print(const cli_ctx *c, const json_t *resp)
{
    const json_t *data = json_object_get(resp, "data");
    if (!json_is_object(data))
        return cli_fail("the controller's answer has no \"data\" object; check that --controller "
                        "points to a weft controller");
    if (!c->json)
        cli_object_print(stdout, data);
    return CLI_OK;
}
