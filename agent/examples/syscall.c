/*
 * etch's system calls from C: open a state directory, make one English request with
 * an agent's capability, approve it if it was staged, and verify the audit log.
 *
 *   cc syscall.c $(pkg-config --cflags --libs etch-agent) -o syscall   (installed: cargo cinstall)
 *   cc -I agent/include agent/examples/syscall.c -L target/release -letch_agent -o syscall
 *   etch cap mint --state /tmp/st --agent alice --workspace ws > alice.cap
 *   LD_LIBRARY_PATH=target/release ./syscall /tmp/st alice "$(cat alice.cap)" ws \
 *       "send a message to bob saying hi" approve
 *
 * Prints the answer's JSON, then the approval's, then "audit: intact" or why not.
 */
#include <stdio.h>
#include <string.h>
#include <stdlib.h>

#include "etch_agent.h"

int main(int argc, char **argv) {
    if (argc != 6 && argc != 7) {
        fprintf(stderr, "usage: %s STATE AGENT TOKEN WORKSPACE REQUEST [approve]\n", argv[0]);
        return 2;
    }
    char err[512];
    char answer[8192];
    EtchSyscalls *s = etch_syscalls_open(argv[1], err, sizeof err);
    if (s == NULL) {
        fprintf(stderr, "syscall: %s\n", err);
        return 1;
    }
    if (etch_syscall(s, argv[2], argv[3], argv[4], argv[5], answer, sizeof answer, err,
                     sizeof err) != 0) {
        fprintf(stderr, "syscall: %s\n", err);
        etch_syscalls_close(s);
        return 1;
    }
    printf("%s\n", answer);
    if (argc == 7 && strcmp(argv[6], "approve") == 0 && strstr(answer, "\"status\":\"staged\"")) {
        const char *p = strstr(answer, "\"action\":");
        long long id = p ? atoll(p + strlen("\"action\":")) : 0;
        if (etch_approve(s, id, "c-supervisor", answer, sizeof answer, err, sizeof err) != 0) {
            fprintf(stderr, "approve: %s\n", err);
            etch_syscalls_close(s);
            return 1;
        }
        printf("%s\n", answer);
        /* A second approval is refused. */
        if (etch_approve(s, id, "c-supervisor", answer, sizeof answer, err, sizeof err) == 0) {
            fprintf(stderr, "approve: approved twice\n");
            etch_syscalls_close(s);
            return 1;
        }
        printf("again: %s\n", err);
    }
    int v = etch_audit_verify(s, err, sizeof err);
    printf("audit: %s\n", v == 1 ? "intact" : err);
    etch_syscalls_close(s);
    return v == 1 ? 0 : 1;
}
