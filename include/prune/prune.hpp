// prune/prune.hpp: the umbrella header of the core library (standard library only):
// element types, views and adapter traits, masks, selection, N:M and block masks, schedules,
// the search loop, the head-importance accumulator (Michel et al. 2019) and s-pruning.
// Adapters (Eigen, xtensor, torch), file formats and the reference BERT have headers of
// their own.
#pragma once

#include <prune/blocks.hpp>
#include <prune/element.hpp>
#include <prune/error.hpp>
#include <prune/importance/michel.hpp>
#include <prune/importance/scores.hpp>
#include <prune/mask.hpp>
#include <prune/nm.hpp>
#include <prune/schedule.hpp>
#include <prune/search.hpp>
#include <prune/select.hpp>
#include <prune/spruning.hpp>
#include <prune/tensor.hpp>
