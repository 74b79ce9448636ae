// Everything in the engine: include this one header.
#pragma once

#include "autograd/conv.hpp"
#include "autograd/elementwise.hpp"
#include "autograd/linalg.hpp"
#include "autograd/parallel.hpp"
#include "autograd/reduce.hpp"
#include "autograd/shape.hpp"
#include "autograd/random.hpp"
#include "autograd/tensor.hpp"
