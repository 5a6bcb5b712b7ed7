/* An HTTPS server on 127.0.0.1 for the unit tests of HTTPS clients, made with
 * OpenSSL directly rather than pr_tls (which speaks TLS 1.3 only): its TLS
 * versions and TLS 1.2 ciphers are the test's choice, as a third-party
 * server's would be. One thread, one connection at a time; a request whose
 * head and body arrived is answered 204 and its body kept. Header-only
 * helpers for the test that includes it. */
#ifndef TESTS_TLS_SRV_H
#define TESTS_TLS_SRV_H

#include <arpa/inet.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#define TLS_SRV_BODY 4096

typedef struct {
    SSL_CTX *ctx;
    int fd; /* listening */
    int port;
    pthread_t thread;
    pthread_mutex_t mu; /* guards what follows */
    int stop;
    int handshakes; /* completed */
    int version;    /* of the last completed handshake (TLS1_2_VERSION...) */
    char body[TLS_SRV_BODY];
    size_t body_len; /* of the last request */
} tls_srv;

/* The Content-Length of a request head (NUL-terminated), 0 when absent. */
static size_t tls_srv_length(const char *head)
{
    for (const char *l = strstr(head, "\r\n"); l; l = strstr(l + 2, "\r\n"))
        if (strncasecmp(l + 2, "content-length:", 15) == 0)
            return strtoul(l + 17, NULL, 10);
    return 0;
}

/* Reads a request head and its Content-Length body into s->body; 0 or -1. */
static int tls_srv_read(tls_srv *s, SSL *ssl)
{
    char buf[TLS_SRV_BODY * 2];
    size_t n = 0;
    const char *end = NULL;
    int r;

    while (n < sizeof(buf) - 1 && (r = SSL_read(ssl, buf + n, (int)(sizeof(buf) - 1 - n))) > 0) {
        n += (size_t)r;
        buf[n] = '\0';
        if ((end = strstr(buf, "\r\n\r\n")) == NULL)
            continue;
        size_t want = tls_srv_length(buf);
        if (want >= TLS_SRV_BODY)
            return -1;
        if (n - (size_t)(end + 4 - buf) < want)
            continue;
        pthread_mutex_lock(&s->mu);
        memcpy(s->body, end + 4, want);
        s->body[want] = '\0';
        s->body_len = want;
        pthread_mutex_unlock(&s->mu);
        return 0;
    }
    return -1;
}

static void tls_srv_serve(tls_srv *s, int c)
{
    static const char ok[] = "HTTP/1.1 204 No Content\r\nConnection: close\r\n\r\n";
    struct timeval tv = {.tv_sec = 5};
    SSL *ssl = SSL_new(s->ctx);

    setsockopt(c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    setsockopt(c, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
    if (ssl && SSL_set_fd(ssl, c) == 1 && SSL_accept(ssl) == 1) {
        pthread_mutex_lock(&s->mu);
        s->handshakes++;
        s->version = SSL_version(ssl);
        pthread_mutex_unlock(&s->mu);
        if (tls_srv_read(s, ssl) == 0)
            SSL_write(ssl, ok, (int)sizeof(ok) - 1);
        SSL_shutdown(ssl);
    }
    SSL_free(ssl);
    ERR_clear_error();
    close(c);
}

static void *tls_srv_main(void *arg)
{
    tls_srv *s = arg;
    struct pollfd p = {.fd = s->fd, .events = POLLIN};

    for (;;) {
        pthread_mutex_lock(&s->mu);
        int stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            return NULL;
        if (poll(&p, 1, 50) == 1) {
            int c = accept(s->fd, NULL, NULL);
            if (c >= 0)
                tls_srv_serve(s, c);
        }
    }
}

static int tls_srv_load(SSL_CTX *ctx, const char *cert_pem, const char *key_pem)
{
    BIO *bc = BIO_new_mem_buf(cert_pem, -1), *bk = BIO_new_mem_buf(key_pem, -1);
    X509 *x = bc ? PEM_read_bio_X509(bc, NULL, NULL, NULL) : NULL;
    EVP_PKEY *k = bk ? PEM_read_bio_PrivateKey(bk, NULL, NULL, NULL) : NULL;
    int ok = x && k && SSL_CTX_use_certificate(ctx, x) == 1 && SSL_CTX_use_PrivateKey(ctx, k) == 1;

    X509_free(x);
    EVP_PKEY_free(k);
    BIO_free(bc);
    BIO_free(bk);
    return ok ? 0 : -1;
}

/* Listens on 127.0.0.1 (a free port) with TLS versions min..max; ciphers,
 * when not NULL, is the TLS 1.2 cipher list. 0 or -1. */
static int tls_srv_start(tls_srv *s, const char *cert_pem, const char *key_pem, int min, int max,
                         const char *ciphers)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);

    memset(s, 0, sizeof(*s));
    pthread_mutex_init(&s->mu, NULL);
    if ((s->ctx = SSL_CTX_new(TLS_server_method())) == NULL ||
        SSL_CTX_set_min_proto_version(s->ctx, min) != 1 ||
        SSL_CTX_set_max_proto_version(s->ctx, max) != 1 ||
        (ciphers && SSL_CTX_set_cipher_list(s->ctx, ciphers) != 1) ||
        tls_srv_load(s->ctx, cert_pem, key_pem) < 0)
        return -1;
    s->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (s->fd < 0 || bind(s->fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(s->fd, 8) < 0 ||
        getsockname(s->fd, (struct sockaddr *)&a, &len) < 0)
        return -1;
    s->port = ntohs(a.sin_port);
    return pthread_create(&s->thread, NULL, tls_srv_main, s) == 0 ? 0 : -1;
}

static void tls_srv_stop(tls_srv *s)
{
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    close(s->fd);
    SSL_CTX_free(s->ctx);
    pthread_mutex_destroy(&s->mu);
}

/* What the server saw: completed handshakes, the last one's version. */
static void tls_srv_seen(tls_srv *s, int *handshakes, int *version)
{
    pthread_mutex_lock(&s->mu);
    *handshakes = s->handshakes;
    *version = s->version;
    pthread_mutex_unlock(&s->mu);
}

#endif
