/*
 * The libFuzzer entry point every target in tests/fuzz/ defines. Built either
 * with clang -fsanitize=fuzzer (libFuzzer supplies main), or with driver.c,
 * which replays a corpus so that `make check` exercises the targets with gcc.
 */
#ifndef BR_FUZZ_H
#define BR_FUZZ_H

#include <stddef.h>
#include <stdint.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#endif
