/*
 * cpu_features.c - run-time detection of the CPU's vector extensions.
 * x86-64: CPUID leaves 1 and 7 say what the core has; XGETBV says whether
 * the OS saves the wider registers (a hypervisor may hide AVX-512 state
 * even when CPUID lists it), and AMX additionally needs a per-process
 * permission from Linux. arm64: the kernel's HWCAP bits.
 */
#define _GNU_SOURCE
#include "cpu_features.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif
#elif defined(__aarch64__) && defined(__linux__)
#include <sys/auxv.h>
#endif

static cpu_features g_feat;
static int g_feat_ready;

#if defined(__x86_64__) || defined(__i386__)
static unsigned long long xgetbv0(void) {
    unsigned lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((unsigned long long)hi << 32) | lo;
}

static void detect(cpu_features *f) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return;
    unsigned fam = (a >> 8) & 15, mod = (a >> 4) & 15;
    if (fam == 15) fam += (a >> 20) & 255;
    if (fam == 6 || fam >= 15) mod |= ((a >> 16) & 15) << 4;
    f->family = (int)fam, f->model = (int)mod;
    int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1;
    unsigned long long xcr0 = osxsave ? xgetbv0() : 0;
    int ymm_ok = (xcr0 & 6) == 6;          /* SSE and AVX state */
    int zmm_ok = ymm_ok && (xcr0 & 0xe0) == 0xe0; /* opmask, ZMM_Hi256, Hi16_ZMM */
    int amx_ok = (xcr0 & (3ull << 17)) == (3ull << 17); /* XTILECFG, XTILEDATA */
    unsigned max7 = 0, b7 = 0, c7 = 0, d7 = 0, a71 = 0, x;
    if (__get_cpuid_count(7, 0, &max7, &b7, &c7, &d7) && max7 >= 1)
        __get_cpuid_count(7, 1, &a71, &x, &x, &x);
    int avx2 = (b7 >> 5) & 1, avx512f = (b7 >> 16) & 1, avx512dq = (b7 >> 17) & 1;
    int avx512bw = (b7 >> 30) & 1, avx512vl = (b7 >> 31) & 1;
    if (avx && avx2 && fma && ymm_ok) f->isa = CPU_ISA_AVX2;
    if (f->isa == CPU_ISA_AVX2 && avx512f && avx512dq && avx512bw && avx512vl && zmm_ok)
        f->isa = CPU_ISA_AVX512;
    f->avx512_vnni = f->isa == CPU_ISA_AVX512 && ((c7 >> 11) & 1);
    f->avx512_bf16 = f->isa == CPU_ISA_AVX512 && ((a71 >> 5) & 1);
    f->avx_vnni = f->isa >= CPU_ISA_AVX2 && ((a71 >> 4) & 1);
    int amx_tile = (d7 >> 24) & 1;
    f->amx_bf16 = amx_ok && amx_tile && ((d7 >> 22) & 1);
    f->amx_int8 = amx_ok && amx_tile && ((d7 >> 25) & 1);
    unsigned r[12];
    if (__get_cpuid(0x80000000, &a, &b, &c, &d) && a >= 0x80000004) {
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002 + i, &r[4 * i], &r[4 * i + 1], &r[4 * i + 2], &r[4 * i + 3]);
        char s[49];
        memcpy(s, r, 48);
        s[48] = 0;
        const char *p = s;
        while (*p == ' ') p++;
        snprintf(f->brand, sizeof f->brand, "%s", p);
    }
}
#elif defined(__aarch64__)
static void detect(cpu_features *f) {
    f->isa = CPU_ISA_NEON; /* Advanced SIMD is part of the arm64 base ISA */
#if defined(__linux__)
    unsigned long hw = getauxval(AT_HWCAP), hw2 = getauxval(AT_HWCAP2);
    f->neon_dot = (hw >> 20) & 1;   /* HWCAP_ASIMDDP */
    f->neon_bf16 = (hw2 >> 14) & 1; /* HWCAP2_BF16 */
#elif defined(__APPLE__)
    f->neon_dot = 1; /* every Apple arm64 core has the dot product */
#endif
}
#else
static void detect(cpu_features *f) { (void)f; }
#endif

static int isa_from_name(const char *s) {
    if (!strcmp(s, "c")) return CPU_ISA_C;
    if (!strcmp(s, "neon")) return CPU_ISA_NEON;
    if (!strcmp(s, "avx2")) return CPU_ISA_AVX2;
    if (!strcmp(s, "avx512")) return CPU_ISA_AVX512;
    return -1;
}

/* The levels each path needs: NEON is not below AVX2 on x86 (it cannot
 * run there), so lowering goes to the level itself only where the CPU
 * has it, else to C. */
static int lower_to(int have, int want) {
    if (want >= have) return have;
    if (want == CPU_ISA_NEON && have != CPU_ISA_NEON) return CPU_ISA_C;
    if (have == CPU_ISA_NEON && want != CPU_ISA_C) return have;
    return want;
}

static void apply_isa(cpu_features *f, int isa) {
    f->isa = lower_to(f->isa, isa);
    if (f->isa < CPU_ISA_AVX512) f->avx512_bf16 = f->avx512_vnni = f->amx_bf16 = f->amx_int8 = 0;
    if (f->isa < CPU_ISA_AVX2) f->avx_vnni = 0;
    if (f->isa != CPU_ISA_NEON) f->neon_dot = f->neon_bf16 = 0;
}

const cpu_features *cpu_features_get(void) {
    if (!g_feat_ready) {
        cpu_features f;
        memset(&f, 0, sizeof f);
        detect(&f);
        const char *e = getenv("GPT_CPU_ISA");
        int want = e ? isa_from_name(e) : -1;
        if (want >= 0) apply_isa(&f, want);
        /* GPT_CPU_AMX=0 leaves AMX off (bf16 products then run on
         * AVX512-BF16): to compare the two kernels, or to rule AMX out. */
        const char *amx = getenv("GPT_CPU_AMX");
        if (amx && !strcmp(amx, "0")) {
            f.amx_off = f.amx_bf16 || f.amx_int8;
            f.amx_bf16 = f.amx_int8 = 0;
        }
        if (amx && !strcmp(amx, "emulate")) f.amx_emulate = 1;
        g_feat = f;
        g_feat_ready = 1;
    }
    return &g_feat;
}

int cpu_features_set_isa(int isa) {
    cpu_features_get();
    apply_isa(&g_feat, isa);
    return g_feat.isa;
}

int cpu_amx_enable(void) {
    /* -1 until asked; atomics because the first products may start on
     * several threads at once (asking twice is harmless, the answer is). */
    static int answer = -1;
    int a = __atomic_load_n(&answer, __ATOMIC_ACQUIRE);
    if (a >= 0) return a;
    const cpu_features *f = cpu_features_get();
    a = 0;
#if defined(__x86_64__) && defined(__linux__)
    if (f->amx_bf16 || f->amx_int8) {
        /* ARCH_REQ_XCOMP_PERM = 0x1023, XFEATURE_XTILEDATA = 18. The
         * permission is the whole process's, threads started later too. */
        a = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
        if (!a) g_feat.amx_denied = 1;
    }
#endif
    if (!a) g_feat.amx_bf16 = g_feat.amx_int8 = 0;
    __atomic_store_n(&answer, a, __ATOMIC_RELEASE);
    return a;
}

const char *cpu_isa_name(int isa) {
    switch (isa) {
    case CPU_ISA_AVX512: return "avx512";
    case CPU_ISA_AVX2: return "avx2";
    case CPU_ISA_NEON: return "neon";
    default: return "c";
    }
}
