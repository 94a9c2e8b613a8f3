"""Physics: the angular distribution, kinematics, parton distributions and the generator."""
