"""python -m training.experiments: python -m training.train with the experiments' options too."""

from training.experiments.recipe import ExperimentRecipe
from training.train import main

if __name__ == "__main__":
    main(recipe_type=ExperimentRecipe)
