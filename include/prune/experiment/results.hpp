// prune/experiment/results.hpp: what one run of the lottery experiment measured, per task
// and seed; the report summarises them over seeds (prune/experiment/stats.hpp).
//
// Subnetwork keys are "<method>.<variant>.<stage>": method s (structured: heads + MLPs)
// or m (magnitude), variant good / random / bad, stage pruned (evaluated as pruned, no
// retraining) or refit (re-fine-tuned from the pre-trained weights under the mask).
#pragma once

#include <prune/experiment/stats.hpp>
#include <prune/mask.hpp>

#include <cmath>
#include <cstddef>
#include <map>
#include <string>
#include <vector>

namespace prune::experiment {

/// The methods, variants and stages, in the report's order.
inline const std::vector<std::string> methods = {"s", "m"};
/// Good, random, bad.
inline const std::vector<std::string> variants = {"good", "random", "bad"};
/// Pruned (no retraining), re-fine-tuned.
inline const std::vector<std::string> stages = {"pruned", "refit"};

/// The key of one subnetwork score.
inline std::string subnetwork_key(const std::string& method, const std::string& variant, const std::string& stage) {
    return method + "." + variant + "." + stage;
}

/// The names of the matrices of one encoder layer that m-pruning prunes, in report order.
inline const std::vector<std::string> layer_matrices = {"query", "key", "value", "attn-out", "ffn-in", "ffn-out"};

/// One step of a pruning search.
struct history_step {
    int step = 0;            ///< 0 = the full model
    double sparsity = 0.0;   ///< fraction pruned (heads+MLPs of all components for s; weights for m)
    double metric = 0.0;     ///< dev score
    bool passed = true;      ///< metric >= ratio * baseline
};

/// Everything measured for one task and one seed.
struct seed_result {
    int seed = 0;                                  ///< the seed of fine-tuning, pruning and sampling
    double full = 0.0;                             ///< dev score of the fine-tuned full model
    std::map<std::string, double> scores;          ///< subnetwork_key -> dev score
    prune::group_mask heads;                       ///< s-good: heads kept (layers x heads)
    prune::group_mask mlps;                        ///< s-good: MLPs kept (layers x 1)
    std::map<std::string, std::size_t> kept_heads; ///< variant -> heads kept (s)
    std::map<std::string, std::size_t> kept_mlps;  ///< variant -> MLPs kept (s)
    std::map<std::string, std::size_t> pruned_weights;  ///< variant -> weights pruned (m)
    std::size_t prunable_weights = 0;              ///< m-pruning candidates
    std::vector<std::vector<double>> m_sparsity;   ///< m-good: layers x layer_matrices, fraction pruned
    std::vector<history_step> s_history;           ///< s-pruning search
    std::vector<history_step> m_history;           ///< m-pruning search
    bool refit_m_zeros_held = true;                ///< every m-pruned weight still exactly 0 after refit
    double seconds = 0.0;                          ///< wall time of this task and seed
};

/// Everything measured for one task.
struct task_result {
    std::string name;               ///< task name
    std::string metric = "accuracy"; ///< the task's metric
    double majority = 0.0;          ///< the majority-class baseline on dev
    std::size_t train_size = 0;     ///< rows
    std::size_t dev_size = 0;       ///< rows
    std::vector<seed_result> seeds; ///< one per seed
};

/// The seeds' values of one subnetwork score ("full" for the full model).
inline std::vector<double> seed_values(const task_result& task, const std::string& key) {
    std::vector<double> values;
    for (const seed_result& seed : task.seeds) {
        if (key == "full") {
            values.push_back(seed.full);
        } else if (auto it = seed.scores.find(key); it != seed.scores.end()) {
            values.push_back(it->second);
        }
    }
    return values;
}

}  // namespace prune::experiment
