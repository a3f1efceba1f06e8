"""mnist_core: data, models, training, sweeps and the run store behind the MNIST lab.

Never imports Streamlit; TensorFlow is imported only where a model is built or loaded.
"""
