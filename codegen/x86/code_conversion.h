// How the float kernels turn packed codes into numbers without per-element arithmetic; shared
// by every x86 float generator so that the bit positions below live in one place.
//
// 2-, 3- and 4-bit codes: a code q placed in the mantissa of the bf16 number 2^E, right
// under its exponent bits, gives the number 2^E + q by one OR (q < 2^E). Zero-extending a
// 32-byte block of the native layout to 16-bit words puts field f of byte 2j+h in word 2j+h,
// so a shift and a mask-and-OR turn field f into the bf16 pair (2^E + q[j,k0+2f],
// 2^E + q[j,k0+2f+1]) in 32-bit lane j: the operand of vdpbf16ps, or, split into its two
// halves (low half << 16, high half with the low half cleared), two fp32 vectors for FMA.
// 2^E + q has at most E+1 <= 8 significant bits, so it is exact in bf16 and in fp32.
//
// E per width: 4-bit uses E=7 (2^E = 128), which leaves the low nibble in place (bits 0-3):
// one instruction fewer per step. 2- and 3-bit use E=3 (2^E = 8, the smallest base that holds
// a 3-bit code), because the offset is paid in accuracy: a group's partial sums are about
// (2^E + mean q)/|q - z| times its contribution, and with 128 that ratio is ~85 for 2-bit
// codes, which at k=14336 and group=-1 eats the whole fp32 tolerance; with 8 it is ~8.
// E=3 also leaves 2-bit field 2 (bits 4-5) in place.
//
// 8-bit codes (0..255) would need 9 significant bits as 256 + q (bf16 has 8), so they are
// converted as integers instead (vcvtdq2ps, exact for 0..255; bf16 pairs then come from
// vcvtne2ps2bf16, exact since 0..255 has at most 8 significant bits): offset 0.
//
// Every kernel accumulates A = sum_k x[k] * (offset + q[k]) per group and removes the offset
// with the group's sum of x: y += scale * (A - (offset + zero) * sum_k x[k]).
#pragma once

#include <cstdint>

namespace lowbit::x86 {

// E of the magic base 2^E for 2-, 3- and 4-bit codes.
constexpr int magic_exponent(int bits) { return bits == 4 ? 7 : 3; }

// The number added to every code before it is multiplied (0: integer conversion).
constexpr float code_offset(int bits) { return bits == 8 ? 0.0f : static_cast<float>(1 << magic_exponent(bits)); }

// bf16 bits of 2^E: sign 0, biased exponent E + 127 at bits 7..14, mantissa 0.
constexpr uint16_t magic_bf16(int bits) { return static_cast<uint16_t>((magic_exponent(bits) + 127) << 7); }

// Word bit at which bit 0 of a code must sit to weigh 1 under the exponent of 2^E.
constexpr int magic_code_bit(int bits) { return 7 - magic_exponent(bits); }

// Left shift (negative: right) that moves bit `code_bit` of the code, stored in a plane of
// `width`-bit fields at field `field`, to its place under the magic exponent. 3-bit codes
// come from two planes: the low two bits (width 2, code_bit 0) and the high bit (width 1,
// code_bit 2).
constexpr int field_shift(int bits, int width, int field, int code_bit) {
  return magic_code_bit(bits) + code_bit - width * field;
}

// Word mask of a plane's bits once shifted into place: `width` bits at magic_code_bit + code_bit.
constexpr uint16_t field_mask(int bits, int width, int code_bit) {
  return static_cast<uint16_t>(((1 << width) - 1) << (magic_code_bit(bits) + code_bit));
}

// Both 16-bit words of a dword set to `word`, for broadcast constants.
constexpr uint32_t both_words(uint16_t word) { return static_cast<uint32_t>(word) * 0x10001u; }

// Code values per zero-extended 32-byte block: 16 columns x (16 / width) k for one plane.
constexpr int k_per_plane_block(int width) { return 16 / width; }

static_assert(magic_bf16(4) == 0x4300 && magic_bf16(2) == 0x4100);
static_assert(field_shift(4, 4, 0, 0) == 0 && field_shift(4, 4, 1, 0) == -4);
static_assert(field_shift(2, 2, 2, 0) == 0 && field_mask(2, 2, 0) == 0x0030);
static_assert(field_mask(3, 1, 2) == 0x0040 && field_shift(3, 1, 6, 2) == 0);

}  // namespace lowbit::x86
