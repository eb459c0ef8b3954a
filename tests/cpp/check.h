// What every engine unit-test program shares: CHECK counts a failed
// condition (the program's exit status is whether any failed) and goes on,
// so one run reports every failure; ip() reads a dotted IPv4 address.
#pragma once
#include <arpa/inet.h>

#include <cstdint>
#include <cstdio>

inline int failures = 0;
#define CHECK(cond)                                                          \
  do {                                                                       \
    if (!(cond)) {                                                           \
      std::fprintf(stderr, "%s:%d: CHECK(%s)\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                            \
    }                                                                        \
  } while (0)

// Network byte order, as the engine keeps addresses.
inline uint32_t ip(const char* text) {
  in_addr a{};
  inet_pton(AF_INET, text, &a);
  return a.s_addr;
}
