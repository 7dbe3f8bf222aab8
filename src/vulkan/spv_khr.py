#!/usr/bin/env python3
"""spv_khr.py IN.spv OUT.spv [OUT.inc] - rewrites a SPIR-V module that uses
SPV_NV_cooperative_matrix into the same module on SPV_KHR_cooperative_matrix.

Why: Debian 12's glslc (glslang 11) compiles GL_NV_cooperative_matrix but not
GL_KHR_cooperative_matrix, while the KHR extension is the one AMD, Intel and
NVIDIA's recent drivers all expose. The two SPIR-V extensions describe the same
operations, so the build compiles the NV form and this tool rewrites the words
(SPV_KHR_cooperative_matrix and SPV_NV_cooperative_matrix specifications):

  Capability CooperativeMatrixNV (5357)  -> CooperativeMatrixKHR (6022)
  OpExtension "SPV_NV_cooperative_matrix" -> "SPV_KHR_cooperative_matrix"
  OpTypeCooperativeMatrixNV (5358)  Result Comp Scope Rows Cols
    -> OpTypeCooperativeMatrixKHR (4456)  Result Comp Scope Rows Cols Use
       (Use, a 32-bit integer constant: MatrixA 0, MatrixB 1, Accumulator 2)
  OpCooperativeMatrixLoadNV (5359)  Type Result Ptr Stride ColumnMajor [Mem]
    -> OpCooperativeMatrixLoadKHR (4457)  Type Result Ptr Layout Stride [Mem]
       (Layout, a 32-bit integer constant: RowMajor 0, ColumnMajor 1; the NV
       ColumnMajor operand must be OpConstantTrue/False)
  OpCooperativeMatrixStoreNV (5360)  Ptr Obj Stride ColumnMajor [Mem]
    -> OpCooperativeMatrixStoreKHR (4458)  Ptr Obj Layout Stride [Mem]
  OpCooperativeMatrixMulAddNV (5361) -> OpCooperativeMatrixMulAddKHR (4459),
       same operands (no Cooperative Matrix Operands: float matrices only)
  OpCooperativeMatrixLengthNV (5362) -> OpCooperativeMatrixLengthKHR (4460)

The one thing KHR adds is the Use of each matrix type. It is inferred from the
multiply-adds: the type of every A operand is MatrixA, of every B operand
MatrixB, of C and the result Accumulator; a type no multiply-add names (one
only loaded and stored) is an Accumulator. NV lets one type serve as A and B;
KHR does not, and splitting a type through every array, pointer and variable
derived from it is more than this tool does, so such a module is refused with
a message that says to declare distinct types in the shader (e.g. a B type whose
columns are a specialisation constant, as matmul_coop.comp does). Integer
matrices (whose KHR multiply-add needs signedness operands) are refused too.

With OUT.inc, also writes the words as a C initializer, as glslc -mfmt=c does.
Exit status: 0 done, 1 the module cannot be rewritten (one line on stderr),
2 bad usage or a file that is not SPIR-V.
"""
import struct
import sys

MAGIC = 0x07230203
OP_EXTENSION, OP_CAPABILITY = 10, 17
OP_TYPE_INT, OP_TYPE_FLOAT = 21, 22
OP_CONSTANT_TRUE, OP_CONSTANT_FALSE, OP_CONSTANT = 41, 42, 43
CAP_NV, CAP_KHR, CAP_VULKAN_MEMORY_MODEL = 5357, 6022, 5345
NV_TYPE, NV_LOAD, NV_STORE, NV_MULADD, NV_LENGTH = 5358, 5359, 5360, 5361, 5362
KHR_TYPE, KHR_LOAD, KHR_STORE, KHR_MULADD, KHR_LENGTH = 4456, 4457, 4458, 4459, 4460
USE_A, USE_B, USE_ACC = 0, 1, 2
USE_NAMES = {USE_A: "MatrixA", USE_B: "MatrixB", USE_ACC: "Accumulator"}
# Instructions whose words are [opcode, result type, result id, ...]: the ones
# that can define a cooperative-matrix value (a multiply-add operand).
TYPED = {
    1, 44, 50, 51, 55, 57, 61, 80, 81, 82, 83, 115, 127, 129, 131, 133, 136, 143, 169, 245,
    NV_LOAD, NV_MULADD,
}


class Refused(Exception):
    pass


def string_words(s):
    b = s.encode() + b"\0"
    b += b"\0" * (-len(b) % 4)
    return list(struct.unpack("<%dI" % (len(b) // 4), b))


def words_string(ws):
    b = struct.pack("<%dI" % len(ws), *ws)
    return b.split(b"\0", 1)[0].decode()


def parse(words):
    """Splits the instruction stream (after the 5-word header) into lists."""
    out, i = [], 5
    while i < len(words):
        n = words[i] >> 16
        if n == 0 or i + n > len(words):
            raise Refused("malformed instruction at word %d" % i)
        out.append(list(words[i : i + n]))
        i += n
    return out


def infer_uses(insts):
    """Maps each NV matrix type id to its KHR Use."""
    types = {ins[1]: ins for ins in insts if ins[0] & 0xFFFF == NV_TYPE}
    float_types = {ins[1] for ins in insts if ins[0] & 0xFFFF == OP_TYPE_FLOAT}
    for t, ins in types.items():
        if ins[2] not in float_types:
            raise Refused("cooperative-matrix type %%%d is not of floats (integer matrices need "
                          "the KHR signedness operands this tool does not add)" % t)
    type_of = {ins[2]: ins[1] for ins in insts if ins[0] & 0xFFFF in TYPED and len(ins) > 2}
    roles = {t: set() for t in types}
    for ins in insts:
        if ins[0] & 0xFFFF != NV_MULADD:
            continue
        roles.setdefault(ins[1], set()).add(USE_ACC)
        for operand, use in ((ins[3], USE_A), (ins[4], USE_B), (ins[5], USE_ACC)):
            t = type_of.get(operand)
            if t is None:
                raise Refused("cannot tell the type of multiply-add operand %%%d" % operand)
            roles.setdefault(t, set()).add(use)
    uses = {}
    for t, r in roles.items():
        if t not in types:
            raise Refused("multiply-add operand type %%%d is not a cooperative-matrix type" % t)
        if len(r) > 1:
            raise Refused("cooperative-matrix type %%%d is used as %s: KHR needs one type per use; "
                          "declare distinct types in the shader"
                          % (t, " and ".join(USE_NAMES[u] for u in sorted(r))))
        uses[t] = r.pop() if r else USE_ACC
    return uses


def rewrite(words):
    if len(words) < 5 or words[0] != MAGIC:
        raise ValueError("not a SPIR-V module (little-endian magic number missing)")
    insts = parse(words)
    if not any(i[0] & 0xFFFF == OP_CAPABILITY and i[1] == CAP_NV for i in insts):
        raise Refused("the module does not use SPV_NV_cooperative_matrix")
    if not any(i[0] & 0xFFFF == OP_CAPABILITY and i[1] == CAP_VULKAN_MEMORY_MODEL for i in insts):
        raise Refused("SPV_KHR_cooperative_matrix in a shader needs the Vulkan memory model "
                      "(glslang uses it with GL_KHR_memory_scope_semantics)")
    uses = infer_uses(insts)
    bools = {i[2]: i[0] & 0xFFFF == OP_CONSTANT_TRUE for i in insts
             if i[0] & 0xFFFF in (OP_CONSTANT_TRUE, OP_CONSTANT_FALSE)}
    bound = words[3]
    first_type = next(k for k, i in enumerate(insts) if i[0] & 0xFFFF == NV_TYPE)
    # A 32-bit integer type declared before the first matrix type (its Rows
    # and Columns are such constants, so there is one), and fresh constants
    # 0, 1, 2 for the Use and MemoryLayout operands, placed just before that
    # type (duplicate constants are valid SPIR-V; duplicate types are not).
    int32 = next((i[1] for i in insts[:first_type] if i[0] & 0xFFFF == OP_TYPE_INT and i[2] == 32), None)
    if int32 is None:
        raise Refused("no 32-bit integer type before the first cooperative-matrix type")
    const = {}
    added = []
    for v in (0, 1, 2):
        const[v] = bound
        added.append([(4 << 16) | OP_CONSTANT, int32, bound, v])
        bound += 1

    def layout(col_major_id):
        if col_major_id not in bools:
            raise Refused("the ColumnMajor operand %%%d is not a boolean constant" % col_major_id)
        return const[1] if bools[col_major_id] else const[0]

    out = []
    for k, ins in enumerate(insts):
        op = ins[0] & 0xFFFF
        if k == first_type:
            out += added
        if op == OP_CAPABILITY and ins[1] == CAP_NV:
            ins = [ins[0], CAP_KHR]
        elif op == OP_EXTENSION and words_string(ins[1:]) == "SPV_NV_cooperative_matrix":
            w = string_words("SPV_KHR_cooperative_matrix")
            ins = [((1 + len(w)) << 16) | OP_EXTENSION] + w
        elif op == NV_TYPE:
            ins = [(7 << 16) | KHR_TYPE] + ins[1:6] + [const[uses[ins[1]]]]
        elif op == NV_LOAD:  # type, result, ptr, stride, colmajor, [mem...]
            ins = [(len(ins) << 16) | KHR_LOAD, ins[1], ins[2], ins[3], layout(ins[5]), ins[4]] + ins[6:]
        elif op == NV_STORE:  # ptr, obj, stride, colmajor, [mem...]
            ins = [(len(ins) << 16) | KHR_STORE, ins[1], ins[2], layout(ins[4]), ins[3]] + ins[5:]
        elif op == NV_MULADD:
            ins = [(len(ins) << 16) | KHR_MULADD] + ins[1:]
        elif op == NV_LENGTH:
            ins = [(len(ins) << 16) | KHR_LENGTH] + ins[1:]
        out.append(ins)
    left = [i[0] & 0xFFFF for i in out if (i[0] & 0xFFFF) in range(NV_TYPE, NV_LENGTH + 1)]
    if left:
        raise Refused("NV instructions left after the rewrite: %s" % left)
    header = list(words[:5])
    header[3] = bound
    return header + [w for ins in out for w in ins]


def c_initializer(words):
    rows = [",".join("0x%08x" % w for w in words[i : i + 8]) for i in range(0, len(words), 8)]
    return "{" + ",\n".join(rows) + "}\n"


def main(argv):
    if len(argv) not in (3, 4):
        sys.stderr.write("usage: spv_khr.py IN.spv OUT.spv [OUT.inc]\n")
        return 2
    try:
        data = open(argv[1], "rb").read()
        if len(data) % 4:
            raise ValueError("not a SPIR-V module (its size is not a multiple of 4 bytes)")
        words = list(struct.unpack("<%dI" % (len(data) // 4), data))
        out = rewrite(words)
    except (OSError, ValueError) as e:
        sys.stderr.write("spv_khr: %s: %s\n" % (argv[1], e))
        return 2
    except Refused as e:
        sys.stderr.write("spv_khr: %s: %s\n" % (argv[1], e))
        return 1
    with open(argv[2], "wb") as f:
        f.write(struct.pack("<%dI" % len(out), *out))
    if len(argv) == 4:
        with open(argv[3], "w") as f:
            f.write(c_initializer(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
