// Relative URLs: the page is /api/v1/docs, wherever a proxy mounts it.
window.ui = SwaggerUIBundle({
  url: "openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  // No badge from the public validator service: nothing leaves this server.
  validatorUrl: null,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
