/* tiny: the seed article's "tiny web server in C", written for rt's sample bundle.
 * Serves files from the current directory on the port given as argv[1], one request at a
 * time, GET only. Enough for `curl 127.0.0.1:8082/index.html` to answer Hello World. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

static void reply(int c, const char *status, const char *body, long len) {
    char head[256];
    int n = snprintf(head, sizeof head,
                     "HTTP/1.0 %s\r\nContent-Length: %ld\r\nContent-Type: text/html\r\n"
                     "Connection: close\r\n\r\n",
                     status, len);
    if (write(c, head, n) < 0) return;
    if (body && len > 0 && write(c, body, len) < 0) return;
}

static void serve(int c) {
    char req[2048] = {0};
    size_t n = 0;
    /* A request may arrive in pieces: read until the blank line that ends its head. */
    while (n < sizeof req - 1 && !strstr(req, "\r\n\r\n") && !strstr(req, "\n\n")) {
        ssize_t r = read(c, req + n, sizeof req - 1 - n);
        if (r <= 0) break;
        n += (size_t)r;
    }
    char method[8], path[1024];
    if (n == 0 || sscanf(req, "%7s %1023s", method, path) != 2) {
        reply(c, "400 Bad Request", "bad request\n", 12);
        return;
    }
    if (strcmp(method, "GET") != 0) {
        reply(c, "405 Method Not Allowed", "GET only\n", 9);
        return;
    }
    const char *file = path[0] == '/' ? path + 1 : path;
    if (*file == '\0') file = "index.html";
    if (strstr(file, "..")) {
        reply(c, "403 Forbidden", "forbidden\n", 10);
        return;
    }
    int fd = open(file, O_RDONLY);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        if (fd >= 0) close(fd);
        reply(c, "404 Not Found", "not found\n", 10);
        return;
    }
    char *buf = malloc(st.st_size > 0 ? st.st_size : 1);
    ssize_t got = buf ? read(fd, buf, st.st_size) : -1;
    close(fd);
    if (got < 0) {
        free(buf);
        reply(c, "500 Internal Server Error", "read error\n", 11);
        return;
    }
    reply(c, "200 OK", buf, got);
    free(buf);
}

/* As a container's PID 1 the kernel ignores SIGTERM unless we handle it: without this,
 * `podman stop` and `docker stop` wait their whole timeout, then SIGKILL. */
static void on_term(int sig) {
    (void)sig;
    _exit(0);
}

int main(int argc, char **argv) {
    int port = argc > 1 ? atoi(argv[1]) : 8082;
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_term);
    int s = socket(AF_INET, SOCK_STREAM, 0);
    int one = 1;
    setsockopt(s, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_ANY);
    if (s < 0 || bind(s, (struct sockaddr *)&a, sizeof a) != 0 || listen(s, 16) != 0) {
        perror("tiny: listen");
        return 1;
    }
    printf("tiny: serving %s on port %d\n", getcwd(NULL, 0), port);
    fflush(stdout);
    for (;;) {
        int c = accept(s, NULL, NULL);
        if (c < 0) continue;
        serve(c);
        close(c);
    }
}
