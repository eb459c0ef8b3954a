// libFuzzer target: the engine's command decoder (wire::decode_command), every
// message type it reads. A message it accepts must encode back to exactly the
// same bytes (the format has one spelling per command), and one it refuses
// must say why.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "wire.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  // A copy of exactly the message's size, so ASan sees any read past its end.
  std::vector<uint8_t> message(data, data + size);
  mcr::wire::Command command;
  std::string error = mcr::wire::decode_command(message.data(), message.size(), command);
  if (!error.empty()) return 0;
  std::vector<uint8_t> again = mcr::wire::encode_command(command);
  if (again != message) std::abort();
  return 0;
}
