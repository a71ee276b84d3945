# The seed's example in R torch: train the MLP on the toy data, trace it in eval mode, save the archive,
# and record reference inputs and outputs for ttd. Run: Rscript train.R (writes model.pt, refs.safetensors).
# Needs the CRAN packages torch (with libtorch installed: torch::install_torch()), coro and safetensors.
library(torch)
library(safetensors)

torch_manual_seed(0)

# Toy data: three predictors and a noisy linear target, as in the seed.
toy_dataset <- dataset(
  name = "toy_dataset",
  initialize = function(input_dim, n) {
    self$x <- torch_randn(n, input_dim)
    self$y <- self$x[, 1, drop = FALSE] * 0.2 -
      self$x[, 2, drop = FALSE] * 1.3 -
      self$x[, 3, drop = FALSE] * 0.5 +
      torch_randn(n, 1)
  },
  .getitem = function(i) {
    list(x = self$x[i, ], y = self$y[i, ])
  },
  .length = function() {
    self$x$size(1)
  }
)

input_dim <- 3
train_ds <- toy_dataset(input_dim, 1000)
valid_ds <- toy_dataset(input_dim, 200)
train_dl <- dataloader(train_ds, batch_size = 1, shuffle = TRUE)

# The seed's MLP: two hidden layers, each followed by dropout.
model <- nn_sequential(
  nn_linear(input_dim, 8), nn_relu(), nn_dropout(0.2),
  nn_linear(8, 16), nn_relu(), nn_dropout(0.2),
  nn_linear(16, 1)
)
optimizer <- optim_adam(model$parameters, lr = 0.001)

for (epoch in 1:10) {
  model$train()
  losses <- c()
  coro::loop(for (b in train_dl) {
    optimizer$zero_grad()
    loss <- nnf_mse_loss(model(b$x), b$y)
    loss$backward()
    optimizer$step()
    losses <- c(losses, loss$item())
  })
  cat(sprintf("epoch %d: loss %.4f\n", epoch, mean(losses)))
}

# Eval mode BEFORE tracing: otherwise both dropout layers are recorded in training mode and ttd rejects
# the archive with train_mode_ops.
model$eval()
traced <- jit_trace(model, torch_tensor(c(1.2, 3, 0.1)))
jit_save(traced, "model.pt")
cat(sprintf("f(1,1,1) = %.4f   (the seed expects about -1.6)\n",
            traced(torch_tensor(c(1, 1, 1)))$item()))

# Reference inputs and outputs: the validation rows as one batch, and the eval-mode model's outputs on
# them (the same model that was traced, still in eval mode). ttd reads these names exactly: `input` and
# `output` (one of each); `input.0`, `input.1`, ... / `output.0`, ... for several (counted from 0, also
# in R); or `<case>/input/<i>` / `<case>/output/<j>` for several cases.
x <- valid_ds$x
y <- model(x)$detach()
safe_save_file(list(input = x, output = y), "refs.safetensors")
cat(sprintf("wrote model.pt and refs.safetensors (input %s, output %s)\n",
            paste(x$shape, collapse = "x"), paste(y$shape, collapse = "x")))
