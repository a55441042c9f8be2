// The machine's fused multiply-add peak: twelve independent chains of 512-bit FMAs
// (throughput, not latency), 32 floating-point operations each. Run one copy for a
// core, two at once for two:
//   gcc -O2 -mavx512f -o /tmp/fma_peak bench/fma_peak.c && /tmp/fma_peak
//   (/tmp/fma_peak & /tmp/fma_peak; wait)
// The chains are twelve named variables, not an array: GCC at -O2 kept an array of
// them in memory, a load and a store around every FMA, and the program measured that
// round trip (80 GFLOP/s a core, 2026-12-07) instead of the FMA units (about 270).
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#define EACH_CHAIN(X) X(0) X(1) X(2) X(3) X(4) X(5) X(6) X(7) X(8) X(9) X(10) X(11)
#define DECLARE(i) __m512 c##i = _mm512_set1_ps((float)i);
#define STEP(i) c##i = _mm512_fmadd_ps(c##i, scale, shift);
#define ADD(i) sum += _mm512_reduce_add_ps(c##i);

int main(void) {
  const long iterations = 200000000;
  const __m512 scale = _mm512_set1_ps(0.999999f), shift = _mm512_set1_ps(1e-7f);
  EACH_CHAIN(DECLARE)
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (long n = 0; n < iterations; n++) {
    EACH_CHAIN(STEP)
  }
  clock_gettime(CLOCK_MONOTONIC, &end);
  double seconds = (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) * 1e-9;
  // The sum keeps the chains from being optimised away.
  float sum = 0;
  EACH_CHAIN(ADD)
  printf("%.1f GFLOP/s (%.3f s; %g)\n", iterations * 12.0 * 32 / seconds / 1e9, seconds, sum);
  return 0;
}
