"""ROS 2 adapters of kp_motion: the nodes, the graph description, the runner and bags.

Everything that imports rclpy or ROS messages lives in this package; the core does not.
"""
