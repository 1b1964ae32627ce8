/* Throughput of the FP16 <-> FP32 conversions the FP16-storage kernels use, against a multiply,
 * in cycles (the clock estimated from a chain of dependent integer adds, 1 cycle each).
 * Why: an FP16-storage update at k = 128 does 32 zmm conversions (16 loads, 16 stores) that an
 * FP32 update does not; this is what FP16 storage must win back in memory traffic.
 *   cc -O2 -mavx512f -mavx512vl -mf16c benchmarks/f16c_throughput.c -o /tmp/f16c && /tmp/f16c */
#include <immintrin.h>
#include <stdio.h>
#include <time.h>

#define N 50000000L
static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return t.tv_sec + t.tv_nsec * 1e-9;
}
/* keep values in registers and the loop body alive */
#define KEEP4(a, b, c, d) __asm__ volatile("" : "+v"(a), "+v"(b), "+v"(c), "+v"(d))

int main(void) {
  double t = now();
  long x = 0;
  for (long i = 0; i < N; ++i) __asm__ volatile("add $1, %0\n\tadd $1, %0\n\tadd $1, %0\n\tadd $1, %0" : "+r"(x));
  const double ns_per_cycle = (now() - t) / (4.0 * N) * 1e9;
  printf("clock ~%.2f GHz (dependent integer adds)\n", 1.0 / ns_per_cycle);

  __m512 f0 = _mm512_set1_ps(1.1f), f1 = _mm512_set1_ps(1.2f), f2 = _mm512_set1_ps(1.3f), f3 = _mm512_set1_ps(1.4f);
  __m512 f4 = _mm512_set1_ps(1.5f), f5 = _mm512_set1_ps(1.6f), f6 = _mm512_set1_ps(1.7f), f7 = _mm512_set1_ps(1.8f);
  __m256i h0 = _mm256_setzero_si256(), h1 = h0, h2 = h0, h3 = h0, h4 = h0, h5 = h0, h6 = h0, h7 = h0;

  t = now();
  for (long i = 0; i < N; ++i) {
    h0 = _mm512_cvtps_ph(f0, 0); h1 = _mm512_cvtps_ph(f1, 0); h2 = _mm512_cvtps_ph(f2, 0); h3 = _mm512_cvtps_ph(f3, 0);
    h4 = _mm512_cvtps_ph(f4, 0); h5 = _mm512_cvtps_ph(f5, 0); h6 = _mm512_cvtps_ph(f6, 0); h7 = _mm512_cvtps_ph(f7, 0);
    KEEP4(h0, h1, h2, h3); KEEP4(h4, h5, h6, h7); KEEP4(f0, f1, f2, f3); KEEP4(f4, f5, f6, f7);
  }
  printf("vcvtps2ph ymm <- zmm: %.2f cycles each\n", (now() - t) / (8.0 * N) * 1e9 / ns_per_cycle);

  t = now();
  for (long i = 0; i < N; ++i) {
    f0 = _mm512_cvtph_ps(h0); f1 = _mm512_cvtph_ps(h1); f2 = _mm512_cvtph_ps(h2); f3 = _mm512_cvtph_ps(h3);
    f4 = _mm512_cvtph_ps(h4); f5 = _mm512_cvtph_ps(h5); f6 = _mm512_cvtph_ps(h6); f7 = _mm512_cvtph_ps(h7);
    KEEP4(h0, h1, h2, h3); KEEP4(h4, h5, h6, h7); KEEP4(f0, f1, f2, f3); KEEP4(f4, f5, f6, f7);
  }
  printf("vcvtph2ps zmm <- ymm: %.2f cycles each\n", (now() - t) / (8.0 * N) * 1e9 / ns_per_cycle);

  const __m512 m = _mm512_set1_ps(1.0001f);  /* not 1: the compiler would drop x * 1 */
  t = now();
  for (long i = 0; i < N; ++i) {
    f0 = _mm512_mul_ps(f0, m); f1 = _mm512_mul_ps(f1, m); f2 = _mm512_mul_ps(f2, m); f3 = _mm512_mul_ps(f3, m);
    f4 = _mm512_mul_ps(f4, m); f5 = _mm512_mul_ps(f5, m); f6 = _mm512_mul_ps(f6, m); f7 = _mm512_mul_ps(f7, m);
    KEEP4(f0, f1, f2, f3); KEEP4(f4, f5, f6, f7);
  }
  printf("vmulps zmm: %.2f cycles each\n", (now() - t) / (8.0 * N) * 1e9 / ns_per_cycle);

  /* both at once: do the conversions use the multiplier's pipes? (sum vs max of the above) */
  t = now();
  for (long i = 0; i < N; ++i) {
    f0 = _mm512_mul_ps(f0, m); f1 = _mm512_mul_ps(f1, m); f2 = _mm512_mul_ps(f2, m); f3 = _mm512_mul_ps(f3, m);
    h0 = _mm512_cvtps_ph(f4, 0); h1 = _mm512_cvtps_ph(f5, 0); f6 = _mm512_cvtph_ps(h2); f7 = _mm512_cvtph_ps(h3);
    KEEP4(h0, h1, h2, h3); KEEP4(f0, f1, f2, f3); KEEP4(f4, f5, f6, f7);
  }
  printf("4 vmulps + 2 vcvtps2ph + 2 vcvtph2ps: %.2f cycles per group\n", (now() - t) / N * 1e9 / ns_per_cycle);
  t = now();
  for (long i = 0; i < N; ++i) {
    f0 = _mm512_add_ps(f0, m); f1 = _mm512_add_ps(f1, m); f2 = _mm512_add_ps(f2, m); f3 = _mm512_add_ps(f3, m);
    h0 = _mm512_cvtps_ph(f4, 0); h1 = _mm512_cvtps_ph(f5, 0); f6 = _mm512_cvtph_ps(h2); f7 = _mm512_cvtph_ps(h3);
    KEEP4(h0, h1, h2, h3); KEEP4(f0, f1, f2, f3); KEEP4(f4, f5, f6, f7);
  }
  printf("4 vaddps + 2 vcvtps2ph + 2 vcvtph2ps: %.2f cycles per group\n", (now() - t) / N * 1e9 / ns_per_cycle);
  return 0;
}
