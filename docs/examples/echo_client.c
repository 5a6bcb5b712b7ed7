/* echo_client: dials a weft service, sends a message, half-closes and prints
 * what comes back until the far end half-closes too.
 *
 *   echo_client device.json echo "hello"
 *
 * Build: cc echo_client.c $(pkg-config --cflags --libs libweft) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <weft/weft.h>

static const char *message;
static int exit_code = 1;

static void on_closed(weft_conn *conn)
{
    weft_free(weft_conn_data(conn));
}

static void on_read(weft_conn *conn, const uint8_t *buf, ssize_t n)
{
    if (n > 0) {
        fwrite(buf, 1, (size_t)n, stdout);
        return;
    }
    if (n == WEFT_ECLOSED) {
        putchar('\n');
        exit_code = 0;
    } else {
        fprintf(stderr, "echo_client: %s\n", weft_strerror((int)n));
    }
    weft_close(conn, on_closed);
}

static void on_written(weft_conn *conn, int status, void *data)
{
    if (status < 0)
        fprintf(stderr, "echo_client: write: %s\n", weft_strerror(status));
}

static void on_dialled(weft_conn *conn, int status, void *data)
{
    weft_ctx *ctx = data;

    if (status < 0) { /* conn is NULL: nothing to close */
        fprintf(stderr, "echo_client: dial: %s\n", weft_strerror(status));
        weft_free(ctx);
        return;
    }
    weft_conn_set_data(conn, ctx);
    weft_read_start(conn, on_read);
    weft_write(conn, message, strlen(message), on_written, NULL);
    weft_shutdown(conn); /* after the queued bytes: the host reads EOF */
}

int main(int argc, char **argv)
{
    uv_loop_t *loop = uv_default_loop();
    weft_ctx *ctx;
    int r;

    if (argc != 4) {
        fprintf(stderr, "usage: echo_client IDENTITY_FILE SERVICE MESSAGE\n");
        return 2;
    }
    message = argv[3];
    if ((r = weft_init(loop, argv[1], NULL, &ctx)) < 0 ||
        (r = weft_dial(ctx, argv[2], on_dialled, ctx)) < 0) {
        fprintf(stderr, "echo_client: %s\n", weft_strerror(r));
        return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    uv_loop_close(loop);
    return exit_code;
}
