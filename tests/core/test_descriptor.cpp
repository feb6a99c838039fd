#include <gtest/gtest.h>

#include "lowbit/descriptor.h"
#include "lowbit/errors.h"

namespace lowbit {
namespace {

TEST(Descriptor, ParsesIssueExampleAndFillsDefaults) {
  OpDesc desc = parse_descriptor("m=1,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16,layout=native,device=cpu");
  EXPECT_EQ(desc.m, 1);
  EXPECT_EQ(desc.n, 4096);
  EXPECT_EQ(desc.k, 4096);
  EXPECT_EQ(desc.out, DType::bf16);
  EXPECT_EQ(desc.compute, Compute::floating);
  EXPECT_FALSE(desc.bias);
  EXPECT_EQ(to_string(desc),
            "m=1,n=4096,k=4096,bits=4,group=128,zero=int,act=bf16,out=bf16,compute=float,bias=0,eqscale=0,"
            "layout=native,device=cpu");
}

TEST(Descriptor, OutDefaultsToActivationDtype) {
  EXPECT_EQ(parse_descriptor("n=16,k=32,group=32,act=fp16").out, DType::fp16);
  EXPECT_EQ(parse_descriptor("n=16,k=32,group=32,act=fp16,out=fp32").out, DType::fp32);
}

TEST(Descriptor, RoundTripsEveryCombination) {
  for (int bits : {2, 3, 4, 8})
    for (int group : {32, 64, 128, 256, -1})
      for (const char* zero : {"none", "int", "float"})
        for (const char* act : {"fp32", "bf16", "fp16"})
          for (const char* device : {"cpu", "cuda:1"}) {
            std::string text = "m=3,n=100,k=512,bits=" + std::to_string(bits) + ",group=" + std::to_string(group) +
                               ",zero=" + zero + ",act=" + act + ",compute=int8,bias=1,eqscale=1,device=" + device;
            OpDesc desc = parse_descriptor(text);
            EXPECT_EQ(parse_descriptor(to_string(desc)), desc) << text;
            EXPECT_EQ(std::hash<OpDesc>{}(parse_descriptor(to_string(desc))), std::hash<OpDesc>{}(desc));
          }
}

TEST(Descriptor, AcceptsAnyOrderAndSpaces) {
  EXPECT_EQ(parse_descriptor("k=256, n=64 ,m=2"), parse_descriptor("m=2,n=64,k=256"));
}

// Each bad input names its field in the exception and in the message.
struct BadCase {
  const char* text;
  const char* field;
  const char* message_part;
};

class DescriptorRefuses : public ::testing::TestWithParam<BadCase> {};

TEST_P(DescriptorRefuses, NamesTheField) {
  const BadCase& bad = GetParam();
  try {
    parse_descriptor(bad.text);
    FAIL() << "accepted: " << bad.text;
  } catch (const InvalidArgument& error) {
    EXPECT_EQ(error.field(), bad.field) << error.what();
    EXPECT_NE(std::string(error.what()).find(bad.message_part), std::string::npos) << error.what();
  }
}

INSTANTIATE_TEST_SUITE_P(
    BadInputs, DescriptorRefuses,
    ::testing::Values(BadCase{"n=64,k=100,group=128", "group", "must divide k"},
                      BadCase{"n=64,k=128,bits=5", "bits", "allowed: 2, 3, 4, 8"},
                      BadCase{"n=64,k=128,layout=gptq", "layout", "allowed: native"},
                      BadCase{"m=-1,n=64,k=128", "m", ">= 0"},
                      BadCase{"n=64,k=0", "k", ">= 1"},
                      BadCase{"n=0,k=128", "n", ">= 1"},
                      BadCase{"n=4000000000,k=4000000000,group=-1", "n", "2^40"},
                      BadCase{"n=64,k=128,group=100", "group", "allowed: 32, 64, 128, 256, -1"},
                      BadCase{"n=64,k=128,zero=maybe", "zero", "allowed: none, int, float"},
                      BadCase{"n=64,k=128,act=fp8", "act", "allowed: fp32, bf16, fp16"},
                      BadCase{"n=64,k=128,compute=fast", "compute", "allowed: float, int8"},
                      BadCase{"n=64,k=128,device=tpu", "device", "allowed: cpu"},
                      BadCase{"n=64,k=128,bias=2", "bias", "0 or 1"},
                      BadCase{"n=64,k=128,colour=red", "colour", "known fields"},
                      BadCase{"n=64,k=128,n=32", "n", "twice"},
                      BadCase{"k=128", "n", "required"},
                      BadCase{"n=12x,k=128", "n", "integer"},
                      BadCase{"n=99999999999999999999,k=128", "n", "integer"},
                      BadCase{"", "descriptor", "empty"},
                      BadCase{"n64,k=128", "descriptor", "key=value"}));

TEST(Descriptor, ValidateRefusesHandBuiltStructs) {
  OpDesc desc;
  desc.n = 64;
  desc.k = 96;
  desc.group = 64;
  EXPECT_THROW(validate(desc), InvalidArgument);
  desc.group = whole_k_group;
  EXPECT_NO_THROW(validate(desc));
}

TEST(Descriptor, GroupCountAndSize) {
  OpDesc desc = parse_descriptor("n=8,k=8256,group=64");
  EXPECT_EQ(desc.group_count(), 129);
  EXPECT_EQ(desc.group_size(), 64);
  desc = parse_descriptor("n=8,k=8257,group=-1");
  EXPECT_EQ(desc.group_count(), 1);
  EXPECT_EQ(desc.group_size(), 8257);
}

}  // namespace
}  // namespace lowbit
