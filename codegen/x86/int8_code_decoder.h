// The weights' unsigned codes as the integer dot-product instructions want them: per 32-bit
// lane (column j of a 16-column panel), four codes of consecutive k as bytes in k order, the
// "VNNI int8" order that vpdpbusd (one zmm) and tdpbsud (one 64-byte row of a B tile) read.
// Shared by the AVX512-VNNI and the AMX-INT8 generators, so both decode the native layout
// (docs/layout.md) with the same instructions.
#pragma once

#include <array>
#include <cstdint>
#include <functional>

#include <xbyak/xbyak.h>

namespace lowbit::x86 {

// The zmm registers a decoder may use: two masks, set once per function by emit_masks, and
// five temporaries it clobbers.
struct Int8DecoderRegisters {
  Xbyak::Zmm code_mask;      // the low-bit field of every byte (2- and 4-bit; 3-bit: the low plane)
  Xbyak::Zmm high_bit_mask;  // 3-bit: bit 2 of every byte
  std::array<Xbyak::Zmm, 5> temp;
};

class Int8CodeDecoder {
 public:
  // codes: the zmm holding one dword of four codes per column; k_offset: its first k, counted
  // from the first k of the decoded step.
  using Consume = std::function<void(int k_offset, const Xbyak::Zmm& codes)>;

  Int8CodeDecoder(Xbyak::CodeGenerator& code, int bits, const Int8DecoderRegisters& registers);

  // Register contract: writes code_mask (2/3/4-bit) and high_bit_mask (3-bit); clobbers scratch.
  void emit_masks(const Xbyak::Reg32& scratch) const;

  // One native step (2-, 3- or 4-bit) at `step`, its first byte: hands every quad of codes
  // (k_offset 0, 4, ... k_per_block - 4) to consume, in k order.
  // Register contract: reads the step's bytes and the masks; clobbers temp(0..4) (consume may
  // not use them while the codes are live: it gets them in temp(1) or temp(4)).
  void decode_step(const Xbyak::RegExp& step, const Consume& consume) const;

  // 8-bit, one step (2 k): dword j = (q[j,k0], q[j,k0+1], 0, 0), for a consumer whose
  // activations hold zeros or don't-cares at k0+2, k0+3. Register contract: clobbers temp(0).
  void decode_8bit_pair(const Xbyak::RegExp& step, const Consume& consume) const;

  // 8-bit, two consecutive steps (4 k) into one quad: dword j = (q[j,k0], .., q[j,k0+3]); with
  // second_step false only the first step is read (the K tail's odd last step: nothing past the
  // panel's end is touched) and the upper two bytes are 0. Register contract: clobbers temp(0..1).
  void decode_8bit_quad(const Xbyak::RegExp& step, bool second_step, const Consume& consume) const;

 private:
  void decode_fields(const Xbyak::RegExp& step, const Consume& consume) const;  // 2- and 4-bit
  void decode_3bit(const Xbyak::RegExp& step, const Consume& consume) const;

  Xbyak::CodeGenerator& code_;
  int bits_;
  Int8DecoderRegisters registers_;
};

}  // namespace lowbit::x86
