// libFuzzer target: the reply decoder (wire::decode_reply), which the
// supervisor runs on every worker reply through the bindings. A reply it
// accepts must encode back to the same bytes; the decoder ignores the
// header's reserved field, so that comparison skips it.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "wire.h"

namespace {

std::vector<uint8_t> encode(const mcr::wire::Reply& reply) {
  switch (reply.type) {
    case mcr::wire::Type::ReplyOk:
      return mcr::wire::encode_ok(reply.seq);
    case mcr::wire::Type::ReplyError:
      return mcr::wire::encode_error(reply.seq, reply.error);
    case mcr::wire::Type::ReplyStats:
      return mcr::wire::encode_stats(reply.seq, reply.stats);
    case mcr::wire::Type::ReplyNotifications:
      return mcr::wire::encode_notifications(reply.seq, reply.notifications);
    case mcr::wire::Type::ReplyTrace:
      return mcr::wire::encode_trace(reply.seq, reply.trace);
    default:
      std::abort();  // decode_reply accepted a type it has no encoder for
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<uint8_t> message(data, data + size);  // exactly sized, for ASan
  mcr::wire::Reply reply;
  if (!mcr::wire::decode_reply(message.data(), message.size(), reply).empty()) return 0;
  std::vector<uint8_t> again = encode(reply);
  message[2] = message[3] = 0;  // reserved
  if (again != message) std::abort();
  return 0;
}
