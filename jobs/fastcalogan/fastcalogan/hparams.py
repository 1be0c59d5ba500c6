"""The published FastCaloGAN hyperparameters (no TensorFlow import: readers and tools use them).

Latent 50 with noise N(0.5, 0.5); generator hidden layers 50, 100, 200; critic with 3 hidden
layers of N voxels; WGAN-GP lambda 10; 5 critic steps per generator step; Adam with
learning rate 1e-4 and beta1 0.55 (beta2 and epsilon: the usual defaults); batch 128.
"""

LATENT_DIM = 50
NOISE_MEAN = 0.5
NOISE_STD = 0.5
GENERATOR_HIDDEN = (50, 100, 200)
CRITIC_DEPTH = 3
GP_LAMBDA = 10.0
CRITIC_STEPS = 5
LEARNING_RATE = 1e-4
BETA1 = 0.55
BETA2 = 0.999
EPSILON = 1e-7
BATCH_SIZE = 128
#: Precisions of the matrix-product operands (float32 is the published one).
PRECISIONS = ("float32", "bfloat16")
#: How a pack of GANs is laid out (``pack_layout``; see ``step.build_trainer``).
LAYOUTS = ("batched", "interleaved")
