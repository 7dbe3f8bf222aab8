#version 450
/* Zeroes a range of device memory that vkCmdFillBuffer cannot take (not
 * whole 4-byte words: fp16 tensors with an odd element count). */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { uint64_t p; uint64_t n; } pc; /* n 16-bit units (F16) or words */
#if F16
layout(buffer_reference, std430, buffer_reference_align = 2) buffer U16s { uint16_t v[]; };
#endif
void main() {
    uint64_t stride = uint64_t(gl_NumWorkGroups.x) * gl_NumWorkGroups.y * 256;
    for (uint64_t i = uint64_t(group_id()) * 256 + gl_LocalInvocationID.x; i < pc.n; i += stride) {
#if F16
        U16s(pc.p + i * 2).v[0] = uint16_t(0);
#else
        U32s(pc.p + i * 4).v[0] = 0u;
#endif
    }
}
