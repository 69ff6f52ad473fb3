// tests/mpi/mpi_gram.cpp: a helper that test_mpi runs under mpiexec (not a test itself).
// prune_layers (magnitude + reconstruct, double products) on a one-layer model whose one linear
// [2, 2] reads one token per batch, 7 batches, rank r holding the batches b % k == r. Batch b's
// token is (1e8, 1e8), (1, 1), (1, 1), (1e8, -1e8), (1, 1), (1, 1), (1, 1): the products x0 x1
// are 1e16, 1, 1, -1e16, 1, 1, 1, whose sum depends on the order of the additions (batch order:
// 3, as 1e16 + 1 rounds back to 1e16; summing each rank's batches first gives 0 on 2 ranks and
// 5 on 3).
// Each rank writes <dir>/rank<r>.json: the gram's x0 x1 sum as prune_layers saw it, and whether
// the gram and the reconstructed weights are the same bits as prune_layers without a
// communicator on a model holding all 7 batches (the path of one process, collect).
#include <prune/mpi/mpi.hpp>
#include <prune/sparsify/calibrate.hpp>

#include <nlohmann/json.hpp>

#include <cstring>
#include <fstream>
#include <string>
#include <vector>

namespace {

namespace sp = prune::sparsify;

/// One linear of one layer; calibration batches of one token each.
class one_linear {
public:
    struct linear {
        std::string name;
        prune::tensor_view<float> weight;
        std::size_t input;
    };

    explicit one_linear(std::vector<std::vector<float>> tokens) : tokens_(std::move(tokens)) {}
    std::size_t layers() const { return 1; }
    std::size_t batches() const { return tokens_.size(); }
    std::size_t samples() const { return tokens_.size(); }
    std::uint64_t tokens() const { return tokens_.size(); }
    std::vector<linear> linears(std::size_t) { return {{"w", prune::make_view(weight_.data(), {2, 2}), 0}}; }
    template <class Visit>
    void record(std::size_t, std::size_t b, bool, Visit&& visit) {
        visit(std::size_t{0}, prune::make_view<const float>(tokens_[b].data(), {1, 2}));
    }
    void advance(std::size_t, std::size_t) {}
    const std::vector<float>& weight() const { return weight_; }

private:
    std::vector<std::vector<float>> tokens_;
    std::vector<float> weight_{0.5f, -2.0f, 3.0f, 0.25f};
};

struct pruned {
    std::vector<double> gram;
    std::vector<float> weight;
};

/// prune_layers on the batches b of 7 with b % k == r (every batch when comm is null).
pruned prune_with(prune::mpi::communicator* comm) {
    const std::vector<std::vector<float>> all{{1e8f, 1e8f}, {1, 1}, {1, 1}, {1e8f, -1e8f}, {1, 1}, {1, 1}, {1, 1}};
    std::vector<std::vector<float>> mine;
    const auto k = comm == nullptr ? 1 : static_cast<std::size_t>(comm->size());
    const auto r = comm == nullptr ? 0 : static_cast<std::size_t>(comm->rank());
    for (std::size_t b = r; b < all.size(); b += k) mine.push_back(all[b]);
    one_linear model(mine);
    sp::calibration_options o;
    o.how = sp::method::magnitude;
    o.reconstruct = true;
    o.double_products = true;
    o.target.sparsity = 0.5;
    o.comm = comm;
    pruned out;
    o.on_statistics = [&](const std::string&, const sp::input_statistics& s) { out.gram = s.gram(); };
    static_cast<void>(sp::prune_layers(model, o));
    out.weight = model.weight();
    return out;
}

template <class T>
bool same_bits(const std::vector<T>& a, const std::vector<T>& b) {
    return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(T)) == 0;
}

}  // namespace

int main(int argc, char** argv) {
    prune::mpi::mpi_communicator comm(&argc, &argv);
    if (argc != 2) return 2;
    const pruned ranked = prune_with(&comm);
    const pruned alone = prune_with(nullptr);
    nlohmann::json out;
    out["off_diagonal"] = ranked.gram.at(1);
    out["same_gram"] = same_bits(ranked.gram, alone.gram);
    out["same_weights"] = same_bits(ranked.weight, alone.weight);
    out["weights_changed"] = ranked.weight != std::vector<float>{0.5f, -2.0f, 3.0f, 0.25f};
    std::ofstream(std::string(argv[1]) + "/rank" + std::to_string(comm.rank()) + ".json") << out.dump();
    return 0;
}
