"""One camera's composition: class filter → tracker → analytics → scene preset."""
