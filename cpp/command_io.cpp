// The engine's end of its command channel: command parts in (joined into
// commands, a pass's budget at a time), replies out (in parts, through an
// outbox when the channel is full). What each command does is in engine.cpp.
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "engine.h"
#include "uring_tag.h"

namespace mcr {
namespace {

// Parts of commands read per loop pass before the inputs get their turn
// again: a big rule sync arrives over several passes.
constexpr uint32_t kCommandPartsPerPass = 8;

}  // namespace

// A SOCK_SEQPACKET read of 0 bytes is either an empty message or the end.
bool Engine::peer_closed() const {
  pollfd p{command_fd_, POLLRDHUP, 0};
  return poll(&p, 1, 0) > 0 && (p.revents & (POLLHUP | POLLRDHUP));
}

void Engine::on_command_ready(const io_uring_cqe* cqe) {
  if (!(cqe->flags & IORING_CQE_F_MORE)) command_armed_ = false;
  read_commands();
}

// Reads command parts and runs each command they complete, until the
// channel is empty or the pass's budget is spent. A staged sync, or replies
// the client has not taken, hold the rest back: commands run in order, and
// a client that reads no replies is sent no more. Control path: allocation
// and syscalls are fine here.
void Engine::read_commands() {
  commands_waiting_ = false;
  for (uint32_t parts = 0;; ++parts) {
    if (outbox_bytes_ > wire::kMaxMessage) return;  // on_command_writable resumes
    if (sync_ != nullptr || stats_ != nullptr || parts == kCommandPartsPerPass) {
      commands_waiting_ = true;
      return;
    }
    iovec iov{command_buffer_.data(), command_buffer_.size()};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * 4)];
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof(control);
    ssize_t n = recvmsg(command_fd_, &msg, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    if (n < 0 || (n == 0 && peer_closed())) {  // nobody can command us any more
      running_ = false;
      return;
    }
    int fd = -1;
    for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      size_t count = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < count; ++i) {
        int received;
        std::memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        if (fd < 0) fd = received; else close(received);  // at most one socket per command
      }
    }
    bool complete = assembler_.add(command_buffer_.data(), static_cast<size_t>(n), msg.msg_flags & MSG_TRUNC);
    for (auto& [seq, error] : assembler_.take_errors()) {
      log_.log(LogLevel::Warning, "bad command: " + error);
      reply(wire::encode_error(seq, error));
    }
    std::vector<uint8_t>& message = assembler_.message();
    if (complete && wire::message_type(message) == wire::Type::SyncRules) {
      if (fd >= 0) close(fd);
      begin_sync(std::move(message));
      continue;
    }
    if (!complete) {  // a socket comes with a command's one and only part
      if (fd >= 0) close(fd);
      continue;
    }
    wire::Command command;
    if (std::string error = wire::decode_command(message.data(), message.size(), command); !error.empty()) {
      if (fd >= 0) close(fd);
      log_.log(LogLevel::Warning, "bad command: " + error);
      reply(wire::encode_error(command.seq, error));
      continue;
    }
    execute(command, fd);
  }
}

// Each pass: the staged sync's or stats reply's next step, then any commands the last read
// left waiting, and replies to retry if no poll could be queued for them.
// Returns whether work is left, so that the loop does not sleep on it.
bool Engine::step_control() {
  if (sync_ != nullptr) step_sync();
  if (stats_ != nullptr) step_stats();
  if (sync_ == nullptr && stats_ == nullptr && commands_waiting_) read_commands();
  if (!outbox_.empty() && !reply_poll_armed_) flush_replies();
  return sync_ != nullptr || stats_ != nullptr || commands_waiting_;
}

// A reply goes out in parts; what the channel cannot take now waits in the
// outbox for a POLLOUT poll, so that no reply is lost to a full buffer.
void Engine::reply(const std::vector<uint8_t>& message) {
  for (std::vector<uint8_t>& part : wire::split(message)) {
    outbox_bytes_ += part.size();
    outbox_.push_back(std::move(part));
  }
  if (!reply_poll_armed_) flush_replies();
}

void Engine::flush_replies() {
  while (!outbox_.empty()) {
    const std::vector<uint8_t>& part = outbox_.front();
    ssize_t n = send(command_fd_, part.data(), part.size(), MSG_DONTWAIT | MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == ENOBUFS)) {
      io_uring_sqe* sqe = next_sqe(&ring_);  // none: step_control tries again next pass
      if (sqe == nullptr) return;
      io_uring_prep_poll_add(sqe, command_fd_, POLLOUT);
      io_uring_sqe_set_data64(sqe, make_tag(Op::CommandWritable, 0));
      reply_poll_armed_ = true;
      return;
    }
    if (n < 0) {  // the client is gone: nobody to answer (reading sees the end and stops)
      outbox_.clear();
      outbox_bytes_ = 0;
      return;
    }
    outbox_bytes_ -= part.size();
    outbox_.pop_front();
  }
}

void Engine::on_command_writable(const io_uring_cqe*) {
  reply_poll_armed_ = false;
  flush_replies();
  commands_waiting_ = true;  // reading may have stopped for a full outbox
}

}  // namespace mcr
