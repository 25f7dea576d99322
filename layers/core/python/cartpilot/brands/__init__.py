"""A brand's configuration, its shoppers' profiles, its Cedar policies and the order activity they read."""
