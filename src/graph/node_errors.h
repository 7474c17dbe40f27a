// How the graph names a node in an error, and rethrows an op's complaint (internal).
#pragma once

#include <string>

#include "bdguard/model.h"

namespace bdguard::graph {

// "node 'conv_1' (Conv)".
std::string node_label(const Node& n);
// Rethrows the exception being handled with the file and the node in front, as the
// matching bdguard error (a LibTorch error becomes a ShapeMismatch).
[[noreturn]] void rethrow_for(const std::string& origin, const std::string& label);

}  // namespace bdguard::graph
