/*
 * cpu_features.h - what this CPU can run, found once at run time (CPUID and
 * XGETBV on x86-64, the kernel's hardware capabilities on arm64), so that
 * one binary built for the baseline ISA picks the widest kernels the
 * machine it runs on offers. Every CPU kernel family (fp32 products, bf16,
 * int8) dispatches from here.
 */
#ifndef GPT_CPU_FEATURES_H
#define GPT_CPU_FEATURES_H

/* Instruction-set levels for fp32 kernels, lowest first. */
enum {
    CPU_ISA_C = 0,      /* portable C (any compiler, any CPU) */
    CPU_ISA_NEON = 1,   /* arm64 Advanced SIMD */
    CPU_ISA_AVX2 = 2,   /* x86-64 AVX2 + FMA */
    CPU_ISA_AVX512 = 3, /* x86-64 AVX-512 F/BW/DQ/VL */
};

typedef struct {
    int isa;         /* CPU_ISA_*: the widest fp32 level usable */
    /* Extensions, each 1 only where the CPU has it and the OS saves its
     * registers (XGETBV on x86). */
    int avx512_bf16; /* vdpbf16ps: bf16 pairs into fp32 */
    int avx512_vnni; /* vpdpbusd: int8 dot products */
    int avx_vnni;    /* the same on 256-bit registers (AVX2 machines) */
    int amx_bf16;    /* AMX tiles with bf16 products (needs cpu_amx_enable) */
    int amx_int8;
    int amx_denied;  /* CPUID has AMX but Linux refused the tile state */
    int amx_off;     /* CPUID has AMX, turned off by GPT_CPU_AMX=0 */
    int amx_emulate; /* GPT_CPU_AMX=emulate: bf16 products on the AMX
                      * kernel's C emulation (tests on CPUs without AMX) */
    int neon_dot;    /* arm64 sdot/udot */
    int neon_bf16;   /* arm64 bfdot/bfmmla */
    char brand[64];  /* "AMD EPYC 9R14", or "" */
    int family, model; /* x86 display family and model, else 0 */
} cpu_features;

/* The features of this CPU, found on first call, lowered by
 * GPT_CPU_ISA=c|neon|avx2|avx512 in the environment (to run or test a
 * narrower path on a wider machine; a level above the CPU's is ignored;
 * below avx512 AMX goes too). GPT_CPU_AMX=0 turns AMX off (the bf16
 * products then run on AVX512-BF16); GPT_CPU_AMX=emulate runs the AMX
 * kernel's code on its C emulation, any CPU: slow, for tests. */
const cpu_features *cpu_features_get(void);

/* Lowers the fp32 level for the rest of the process (tests run every path
 * the machine can run through this); returns the level now in force. */
int cpu_features_set_isa(int isa);

/* Asks Linux for the AMX tile state (arch_prctl ARCH_REQ_XCOMP_PERM);
 * returns 1 if AMX may be used by this process, 0 if the CPU lacks it or
 * the kernel refused (then amx_bf16 and amx_int8 become 0 and amx_denied
 * 1). Asked once; later calls return the first answer. */
int cpu_amx_enable(void);

/* "avx512", "avx2", "neon", "c" */
const char *cpu_isa_name(int isa);

#endif
