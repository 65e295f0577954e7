/* rkube's pause: the process that holds a pod sandbox's namespaces open.
 *
 * As upstream Kubernetes' build/pause/linux/pause.c: sleeps until SIGINT or SIGTERM,
 * then exits 0 (SIGINT/SIGTERM are the only ways out, as the sandbox's PID 1 ignores
 * signals it has no handler for), and reaps every child that is re-parented to it
 * when the pod shares a PID namespace. `pause -v` prints the version.
 *
 * Built static by scripts/images.sh: gcc -static -Os -o pause pause.c
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define VERSION "3.10-rkube"

static void sigdown(int signo) {
    psignal(signo, "Shutting down, got signal");
    exit(0);
}

static void sigreap(int signo) {
    (void)signo;
    while (waitpid(-1, NULL, WNOHANG) > 0)
        ;
}

int main(int argc, char **argv) {
    for (int i = 1; i < argc; ++i) {
        if (!strcasecmp(argv[i], "-v")) {
            printf("pause.c %s\n", VERSION);
            return 0;
        }
    }

    if (getpid() != 1)
        /* Not an error: the binary may be run by hand to try it. */
        fprintf(stderr, "Warning: pause should be the first process\n");

    struct sigaction down = {.sa_handler = sigdown};
    if (sigaction(SIGINT, &down, NULL) < 0)
        return 1;
    if (sigaction(SIGTERM, &down, NULL) < 0)
        return 2;
    struct sigaction reap = {.sa_handler = sigreap, .sa_flags = SA_NOCLDSTOP};
    if (sigaction(SIGCHLD, &reap, NULL) < 0)
        return 3;

    for (;;)
        pause();
    fprintf(stderr, "Error: infinite loop terminated\n");
    return 42;
}
