/* echo_server: hosts a weft service and sends every byte back.
 *
 *   echo_server host.json echo
 *
 * Build: cc echo_server.c $(pkg-config --cflags --libs libweft) */
#include <stdio.h>
#include <stdlib.h>
#include <weft/weft.h>

static void on_written(weft_conn *conn, int status, void *data)
{
    if (status < 0)
        fprintf(stderr, "echo_server: write: %s\n", weft_strerror(status));
}

static void on_closed(weft_conn *conn)
{
    fprintf(stderr, "echo_server: %s left\n", weft_conn_peer_identity(conn));
}

static void on_read(weft_conn *conn, const uint8_t *buf, ssize_t n)
{
    int r;

    if (n == WEFT_ECLOSED) { /* the peer is done sending: so are we */
        weft_shutdown(conn);
        return;
    }
    if (n < 0) {
        weft_close(conn, on_closed);
        return;
    }
    /* weft_write copies buf; stop reading while the peer's window is full so
     * that a client that never reads cannot make us buffer without bound. */
    if ((r = weft_write(conn, buf, (size_t)n, on_written, NULL)) < 0)
        weft_close(conn, on_closed);
}

static void on_accept(weft_conn *conn, void *data)
{
    fprintf(stderr, "echo_server: %s connected\n", weft_conn_peer_identity(conn));
    weft_read_start(conn, on_read);
}

static void on_listening(weft_ctx *ctx, const char *service, int status, void *data)
{
    if (status < 0) {
        fprintf(stderr, "echo_server: cannot host %s: %s\n", service, weft_strerror(status));
        weft_free(ctx);
        return;
    }
    fprintf(stderr, "echo_server: hosting %s\n", service);
}

int main(int argc, char **argv)
{
    uv_loop_t *loop = uv_default_loop();
    weft_ctx *ctx;
    int r;

    if (argc != 3) {
        fprintf(stderr, "usage: echo_server IDENTITY_FILE SERVICE\n");
        return 2;
    }
    if ((r = weft_init(loop, argv[1], NULL, &ctx)) < 0 ||
        (r = weft_listen(ctx, argv[2], on_listening, on_accept, NULL)) < 0) {
        fprintf(stderr, "echo_server: %s\n", weft_strerror(r));
        return 1;
    }
    uv_run(loop, UV_RUN_DEFAULT);
    return 0;
}
