/* rkube's nonewprivs image (upstream's test/images/nonewprivs/nnp.go): a setuid-root
 * binary that prints its effective uid. With no_new_privs (allowPrivilegeEscalation:
 * false) the setuid bit is ignored and the caller's uid is printed. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("Effective uid: %d\n", (int)geteuid());
    return 0;
}
