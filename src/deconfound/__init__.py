"""DeconfoundLM Studio: fine-tune language models on observational logs without learning confounders.

The package never imports Streamlit; torch is imported only by the training and generation modules.
"""

__version__ = "0.1.0"
