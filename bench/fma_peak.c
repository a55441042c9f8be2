// The machine's fused multiply-add peak: twelve independent chains of 512-bit FMAs
// (throughput, not latency), 32 floating-point operations each. Run one copy for a
// core, two at once for two:
//   gcc -O2 -mavx512f -o /tmp/fma_peak bench/fma_peak.c && /tmp/fma_peak
//   (/tmp/fma_peak & /tmp/fma_peak; wait)
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

int main(void) {
  const long iterations = 200000000;
  __m512 chains[12];
  const __m512 scale = _mm512_set1_ps(0.999999f), shift = _mm512_set1_ps(1e-7f);
  for (int i = 0; i < 12; i++) chains[i] = _mm512_set1_ps((float)i);
  struct timespec start, end;
  clock_gettime(CLOCK_MONOTONIC, &start);
  for (long n = 0; n < iterations; n++)
    for (int i = 0; i < 12; i++) chains[i] = _mm512_fmadd_ps(chains[i], scale, shift);
  clock_gettime(CLOCK_MONOTONIC, &end);
  double seconds = (end.tv_sec - start.tv_sec) + (end.tv_nsec - start.tv_nsec) * 1e-9;
  // The sum keeps the chains from being optimised away.
  float sum = 0;
  for (int i = 0; i < 12; i++) sum += _mm512_reduce_add_ps(chains[i]);
  printf("%.1f GFLOP/s (%.3f s; %g)\n", iterations * 12.0 * 32 / seconds / 1e9, seconds, sum);
  return 0;
}
