// The engine's part of PIM-SM (RFC 7761): the sockets register outputs send
// on and Registers arrive on, the register input's completions, and the
// notifications the supervisor's PIM state machines poll. Register
// encapsulation itself is an output kind (egress.cpp).
#include <arpa/inet.h>
#include <sys/socket.h>
#include <unistd.h>

#include "engine.h"
#include "pim_register.h"
#include "uring_tag.h"

namespace mcr {

std::string Engine::add_register_egress(int fd) {
  if (register_egress_fd_ >= 0) {
    close(fd);
    return "the engine already has a register socket";
  }
  register_egress_fd_ = fd;
  return {};
}

std::string Engine::add_register_input(int fd) {
  if (register_input_ != nullptr) {
    close(fd);
    return "the engine already has a register input socket";
  }
  register_input_ = std::make_unique<RegisterInput>(fd);
  register_input_->arm_idle(&ring_);
  return {};
}

// Control path: a register output sends to the RP on the register socket.
bool Engine::build_register_output(const OutputSpec& spec, Output& out, std::string& error) const {
  if (register_egress_fd_ < 0) {
    error = "a register output needs the register socket (AddRegisterEgress)";
    return false;
  }
  out.spec = spec;
  out.fd = register_egress_fd_;
  out.address.sin_family = AF_INET;
  out.address.sin_addr.s_addr = spec.destination;
  return true;
}

// One received Register: parsed, relayed as if it came in on the virtual
// REGISTER input from its DR, and its receive queued again (its buffer is
// free once forward returns: egress copies or writes what it sends).
void Engine::on_register(const io_uring_cqe* cqe) {
  uint32_t slot = tag_index(cqe->user_data);
  RegisterInput& input = *register_input_;
  input.completed(slot);
  if (cqe->res < 0) {
    count(drops_, DropReason::RxError);
  } else if (static_cast<uint32_t>(cqe->res) > RegisterInput::kBufferSize) {
    count(drops_, DropReason::Truncated);  // MSG_TRUNC: the whole length, beyond the buffer
  } else {
    ++input.registers;
    input.bytes += static_cast<uint32_t>(cqe->res);
    ReceivedRegister reg;
    DropReason reason;
    if (parse_register(input.buffer(slot), static_cast<size_t>(cqe->res), reg, reason))
      forward(kRegisterIfindex, reg.inner, reg.dr);
    else
      count(drops_, reason);
  }
  input.arm(&ring_, slot);  // if the queue is full, poll_idle_inputs re-arms it before the loop sleeps
}

void Engine::note(const Rule& rule, const ParsedPacket& packet, uint32_t ifindex, uint32_t dr) {
  Notification n{rule.id, packet.source, packet.destination, ifindex, dr};
  if (notify_.record(n, now_ms_) == NotifyTable::Result::Overflow) count(drops_, DropReason::NotifyOverflow);
}

}  // namespace mcr
