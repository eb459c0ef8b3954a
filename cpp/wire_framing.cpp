#include "wire_framing.h"

#include <algorithm>
#include <cstring>

namespace mcr::wire {

std::vector<std::vector<uint8_t>> split(const std::vector<uint8_t>& message) {
  std::vector<std::vector<uint8_t>> parts;
  size_t at = 8;
  do {
    size_t n = std::min(kMaxPartBody, message.size() - at);
    std::vector<uint8_t>& part = parts.emplace_back(message.begin(), message.begin() + 8);
    part.insert(part.end(), message.begin() + at, message.begin() + at + n);
    at += n;
    uint16_t flags = at < message.size() ? kMoreParts : 0;
    std::memcpy(part.data() + 2, &flags, sizeof(flags));
  } while (at < message.size());
  return parts;
}

bool Assembler::add(const uint8_t* data, size_t len, bool truncated) {
  if (len < 8) {  // nothing to name it by, nor to tell whether it ends a message
    errors_.emplace_back(0, "message shorter than its 8-byte header");
    return false;
  }
  uint16_t type, flags;
  uint32_t seq;
  std::memcpy(&type, data, 2);
  std::memcpy(&flags, data + 2, 2);
  std::memcpy(&seq, data + 4, 4);
  bool more = flags & kMoreParts;
  if (state_ != State::Idle && seq != seq_) {  // the sender gave up on the message it was sending
    if (state_ == State::Joining) errors_.emplace_back(seq_, "message ended without its last part");
    state_ = State::Idle;
  }
  if (state_ == State::Skipping) {
    if (!more) state_ = State::Idle;
    return false;
  }
  if (flags & ~kMoreParts) {
    refuse(seq, "reserved header field is not zero (only bit 0, more parts, is defined)", more);
    return false;
  }
  if (truncated || len > kMaxPart) {
    refuse(seq, "command part larger than " + std::to_string(kMaxPart) + " bytes", more);
    return false;
  }
  if (state_ == State::Idle) begin(type, seq);
  if (type != type_) {
    refuse(seq, "a part of another type than the message it continues", more);
    return false;
  }
  if (message_.size() + (len - 8) > kMaxMessage) {
    refuse(seq, "message larger than " + std::to_string(kMaxMessage) + " bytes", more);
    return false;
  }
  message_.insert(message_.end(), data + 8, data + len);
  if (more) return false;
  state_ = State::Idle;
  return true;
}

// The first part: the joined message starts with its header, flags cleared.
void Assembler::begin(uint16_t type, uint32_t seq) {
  state_ = State::Joining;
  type_ = type;
  seq_ = seq;
  message_.resize(8);
  uint16_t flags = 0;
  std::memcpy(message_.data(), &type, 2);
  std::memcpy(message_.data() + 2, &flags, 2);
  std::memcpy(message_.data() + 4, &seq, 4);
}

void Assembler::refuse(uint32_t seq, std::string why, bool more) {
  errors_.emplace_back(seq, std::move(why));
  message_.clear();
  seq_ = seq;
  state_ = more ? State::Skipping : State::Idle;
}

std::vector<std::pair<uint32_t, std::string>> Assembler::take_errors() { return std::exchange(errors_, {}); }

}  // namespace mcr::wire
