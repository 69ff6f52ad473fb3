// prune/train/lr_schedule.hpp: the learning-rate schedule of every training loop: linear
// warm-up then linear decay to 0, as Hugging Face's get_linear_schedule_with_warmup. The
// multiplier for the 0-based update `step` (the lr that update uses is peak lr x multiplier):
//   step < warmup:   step / max(1, warmup)                     (0 at the first update)
//   otherwise:       max(0, (total - step) / max(1, total - warmup))
// tests/train/test_train.cpp pins it against torch.optim.lr_scheduler.LambdaLR with HF's lambda.
#pragma once

#include <algorithm>
#include <cstddef>

namespace prune::train {

/// The multiplier of the peak learning rate at 0-based update `step` of `total` with `warmup`
/// warm-up updates (Hugging Face's get_linear_schedule_with_warmup lambda).
[[nodiscard]] inline double linear_warmup_schedule(std::size_t step, std::size_t total, std::size_t warmup) {
    if (step < warmup) return static_cast<double>(step) / static_cast<double>(std::max<std::size_t>(1, warmup));
    if (step >= total) return 0.0;  // HF: max(0, negative or zero)
    return static_cast<double>(total - step) / static_cast<double>(std::max<std::size_t>(1, total - warmup));
}

}  // namespace prune::train
