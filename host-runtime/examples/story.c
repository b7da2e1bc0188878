/*
 * The etch runtime from C: open a chip (here the simulator served by
 * `etch serve OUT --socket SOCKET`), tell a story streaming its text, score a
 * sentence, and close.
 *
 *   cc story.c $(pkg-config --cflags --libs etch-runtime) -o story   (installed: cargo cinstall)
 *   cc -I host-runtime/include host-runtime/examples/story.c \
 *      -L target/release -letch_runtime -o story                       (in the repository)
 *   LD_LIBRARY_PATH=target/release ./story vfio-user:/tmp/etch.sock out/chip "Once upon a time" 64
 *
 * Prints the story, then one line "ids: ..." with run.c's ids, then "score: ...".
 */
#include <stdio.h>
#include <stdlib.h>

#include "etch.h"

static void print_text(const char *text, size_t len, void *user) {
    (void)user;
    fwrite(text, 1, len, stdout);
    fflush(stdout);
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s DEVICE OUT PROMPT STEPS\n", argv[0]);
        return 2;
    }
    char err[512];
    EtchEngine *engine = etch_engine_open(argv[1], argv[2], NULL, 30.0, err, sizeof err);
    if (engine == NULL) {
        fprintf(stderr, "story: %s\n", err);
        return 1;
    }
    uint32_t ids[1024];
    size_t n = 0;
    if (etch_story(engine, argv[3], (uint32_t)atoi(argv[4]), 0.0, 0.9, 0, print_text, NULL,
                   ids, 1024, &n, err, sizeof err) != 0) {
        fprintf(stderr, "story: %s\n", err);
        etch_engine_close(engine);
        return 1;
    }
    printf("\nids:");
    for (size_t k = 0; k < n && k < 1024; k++) printf(" %u", ids[k]);
    printf("\n");
    double total = 0.0;
    if (etch_score(engine, argv[3], &total, err, sizeof err) != 0) {
        fprintf(stderr, "story: %s\n", err);
        etch_engine_close(engine);
        return 1;
    }
    printf("score: %.6f\n", total);
    etch_engine_close(engine);
    return 0;
}
