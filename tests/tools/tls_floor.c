/* tls_floor: the memory floor of any TLS 1.3 client built on this machine's
 * OpenSSL, for the data-plane bench to set weft-edge's idle RSS against. It
 * makes one TLS 1.3 handshake to HOST:PORT with the system's libssl (as
 * weft-edge links it), sends one byte, and prints
 *   tls_floor rss_kb=N anon_kb=N file_kb=N
 * read from /proc/self/status: what a process holding one TLS connection and
 * nothing else costs. Exit: 0 done, 1 usage or connection error. */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static long status_kb(const char *key)
{
    char line[256];
    long v = -1;
    size_t n = strlen(key);
    FILE *f = fopen("/proc/self/status", "r");

    while (f && fgets(line, sizeof(line), f))
        if (strncmp(line, key, n) == 0 && line[n] == ':')
            v = strtol(line + n + 1, NULL, 10);
    if (f)
        fclose(f);
    return v;
}

int main(int argc, char **argv)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    SSL_CTX *ctx;
    SSL *ssl;
    int fd;

    if (argc != 3 || inet_pton(AF_INET, argv[1], &sa.sin_addr) != 1 || atoi(argv[2]) <= 0) {
        fprintf(stderr, "usage: tls_floor IPV4 PORT\n");
        return 1;
    }
    sa.sin_port = htons((unsigned short)atoi(argv[2]));
    if ((fd = socket(AF_INET, SOCK_STREAM, 0)) < 0 ||
        connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0) {
        perror("tls_floor: connect");
        return 1;
    }
    ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) != 1 ||
        (ssl = SSL_new(ctx)) == NULL || SSL_set_fd(ssl, fd) != 1 || SSL_connect(ssl) != 1 ||
        SSL_write(ssl, "x", 1) != 1) {
        fprintf(stderr, "tls_floor: TLS 1.3 handshake with %s:%s failed\n", argv[1], argv[2]);
        ERR_print_errors_fp(stderr);
        return 1;
    }
    printf("tls_floor rss_kb=%ld anon_kb=%ld file_kb=%ld\n", status_kb("VmRSS"),
           status_kb("RssAnon"), status_kb("RssFile"));
    SSL_free(ssl);
    SSL_CTX_free(ctx);
    close(fd);
    return 0;
}
