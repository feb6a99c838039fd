#include "codegen/x86/int8_code_decoder.h"

#include "lowbit/native_layout.h"

namespace lowbit::x86 {
namespace {

using Xbyak::Zmm;

constexpr uint8_t or_and = 0xA8;  // vpternlogd truth table: (a | b) & c

// The masks of the code bytes: bits 0..width-1 of each byte (3-bit: the low plane's two).
uint32_t code_mask(int bits) {
  switch (bits) {
    case 4: return 0x0f0f0f0f;
    case 2:
    case 3: return 0x03030303;
    default: return 0;
  }
}

}  // namespace

Int8CodeDecoder::Int8CodeDecoder(Xbyak::CodeGenerator& code, int bits, const Int8DecoderRegisters& registers)
    : code_(code), bits_(bits), registers_(registers) {}

void Int8CodeDecoder::emit_masks(const Xbyak::Reg32& scratch) const {
  if (bits_ != 8) {
    code_.mov(scratch, code_mask(bits_));
    code_.vpbroadcastd(registers_.code_mask, scratch);
  }
  if (bits_ == 3) {
    code_.mov(scratch, 0x04040404);
    code_.vpbroadcastd(registers_.high_bit_mask, scratch);
  }
}

void Int8CodeDecoder::decode_step(const Xbyak::RegExp& step, const Consume& consume) const {
  if (bits_ == 3)
    decode_3bit(step, consume);
  else
    decode_fields(step, consume);
}

// 2- and 4-bit: one 32-byte block per step; dword j of the zero-extended words holds bytes
// 2j (even k) and 2j+1 (odd k) of column j, field f of each holding k0 + 2f + h. Quad p (k0+4p
// .. k0+4p+3) is fields 2p (even, odd k) then 2p+1 (even, odd k), so its codes are
//   ((dword >> 2*bits*p) | (dword << (16 - bits - 2*bits*p))) & (width mask in every byte):
// the right shift brings field 2p of both bytes to bytes 0 and 1, the left shift field 2p+1 to
// bytes 2 and 3, and the mask clears the rest (the words' upper halves are 0, so nothing
// leaks into the other pair of bytes). 4-bit: one quad, (dword | dword << 12) & 0x0f0f0f0f.
//
// Register use: temp(0) the dwords, temp(1) the codes, temp(2) the right-shifted dwords.
void Int8CodeDecoder::decode_fields(const Xbyak::RegExp& step, const Consume& consume) const {
  const int quads = 4 / bits_;
  const Zmm dwords = registers_.temp[0];
  const Zmm codes = registers_.temp[1];
  const Zmm low = registers_.temp[2];
  code_.vpmovzxwd(dwords, code_.ptr[step]);
  for (int quad = 0; quad < quads; ++quad) {
    const int right = 2 * bits_ * quad;
    code_.vpslld(codes, dwords, 16 - bits_ - right);
    if (right > 0) code_.vpsrld(low, dwords, right);
    code_.vpternlogd(codes, right > 0 ? low : dwords, registers_.code_mask, or_and);
    consume(4 * quad, codes);
  }
}

// 3-bit: per 16 k, two 2-bit blocks of the low bits (quads 0-1, then 2-3) decoded as above,
// and a 1-bit block of the high bits: bit f of byte 2j+h is k0 + 2f + h, so quad p's high bits
// are bits 2p, 8+2p (k0+4p, +1) and 2p+1, 9+2p (+2, +3) of the dword, which
//   ((dword << (2 - 2p)) | (dword << (17 - 2p))) & 0x04040404
// moves to bit 2 of bytes 0, 1, 2, 3 (a negative shift is to the right).
//
// Register use: temp(0) high-plane dwords, temp(1) low-plane dwords, temp(2) shifted bits,
// temp(3) high bits, temp(4) the codes.
void Int8CodeDecoder::decode_3bit(const Xbyak::RegExp& step, const Consume& consume) const {
  const Zmm high_dwords = registers_.temp[0];
  const Zmm low_dwords = registers_.temp[1];
  const Zmm shifted = registers_.temp[2];
  const Zmm high_bits = registers_.temp[3];
  const Zmm codes = registers_.temp[4];
  code_.vpmovzxwd(high_dwords, code_.ptr[step + 2 * native_block_bytes]);
  for (int quad = 0; quad < 4; ++quad) {
    const int low_quad = quad % 2;
    if (low_quad == 0) code_.vpmovzxwd(low_dwords, code_.ptr[step + quad / 2 * native_block_bytes]);
    code_.vpslld(codes, low_dwords, 14 - 4 * low_quad);
    if (low_quad > 0) code_.vpsrld(shifted, low_dwords, 4 * low_quad);
    code_.vpternlogd(codes, low_quad > 0 ? shifted : low_dwords, registers_.code_mask, or_and);
    const int shift = 2 - 2 * quad;
    if (shift > 0) code_.vpslld(shifted, high_dwords, shift);
    if (shift < 0) code_.vpsrld(shifted, high_dwords, -shift);
    code_.vpslld(high_bits, high_dwords, 17 - 2 * quad);
    code_.vpternlogd(high_bits, shift == 0 ? high_dwords : shifted, registers_.high_bit_mask, or_and);
    code_.vpord(codes, codes, high_bits);
    consume(4 * quad, codes);
  }
}

// One 32-byte block of 2 k: zero-extending its words puts bytes 2j, 2j+1 (k0, k0+1 of
// column j) in the low half of dword j.
void Int8CodeDecoder::decode_8bit_pair(const Xbyak::RegExp& step, const Consume& consume) const {
  const Zmm codes = registers_.temp[0];
  code_.vpmovzxwd(codes, code_.ptr[step]);
  consume(0, codes);
}

// The second step's pair shifted into the upper half of each dword (8-bit steps are 32 bytes).
void Int8CodeDecoder::decode_8bit_quad(const Xbyak::RegExp& step, bool second_step, const Consume& consume) const {
  const Zmm codes = registers_.temp[0];
  const Zmm upper = registers_.temp[1];
  code_.vpmovzxwd(codes, code_.ptr[step]);
  if (second_step) {
    code_.vpmovzxwd(upper, code_.ptr[step + native_block_bytes]);
    code_.vpslld(upper, upper, 16);
    code_.vpord(codes, codes, upper);
  }
  consume(0, codes);
}

}  // namespace lowbit::x86
